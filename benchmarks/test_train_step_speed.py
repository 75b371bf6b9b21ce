"""One training step of the rhythm classifier on a batch of 32 windows, PyTorch on the CPU: the step
``ecgedge train classify`` takes (:func:`ecgedge.train.train_step` on :func:`ecgedge.train.classifier_recipe`:
z-scoring the batch, forward, class-weighted cross-entropy, backward, AdamW, one-cycle schedule), on
the architecture of the benchmarked export's checkpoint, else the default."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

BATCH = 32
SCHEDULE_STEPS = 10**9  # the one-cycle schedule must outlast the benchmark's rounds (it raises past its end)


def test_train_step(benchmark, manifest, threads, info, windows):
    torch = pytest.importorskip("torch", reason="training needs torch (pip install 'ecgedge[train]')")
    from ecgedge.bench import checkpoint_path
    from ecgedge.config import ClassifyConfig, ModelConfig
    from ecgedge.fit_loop import train_step
    from ecgedge.train import classifier_from_init, classifier_recipe

    ckpt, _ = checkpoint_path(manifest)
    if ckpt is not None:
        from ecgedge.models.checkpoint import load_checkpoint

        model_cfg = load_checkpoint(ckpt).model_config
    else:
        model_cfg = ModelConfig()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n_classes = len(manifest.labels)
    cfg = ClassifyConfig(model=model_cfg, leads=tuple(manifest.leads), batch_size=BATCH, epochs=SCHEDULE_STEPS)
    model = classifier_from_init(cfg, n_classes)
    # The few fields of a WindowSet the recipe reads: the windows (mV), their labels and the class names.
    ws = SimpleNamespace(windows=windows(BATCH), labels=np.arange(BATCH) % n_classes, class_names=tuple(manifest.labels))
    batch = np.arange(BATCH)
    recipe = classifier_recipe(model, ws, batch, cfg, torch.device("cpu"))
    model.train()

    def step() -> float:
        return train_step(recipe, model, batch)

    for _ in range(3):
        step()
    benchmark.group = "training"
    benchmark.extra_info.update(info, batch=BATCH, params=sum(p.numel() for p in model.parameters()), provider=f"torch {torch.__version__}")
    loss = benchmark(step)
    assert loss == loss  # finite, not NaN
