"""One training step of the rhythm classifier (forward, loss, backward, AdamW) on a batch of 32
windows, PyTorch on the CPU: the architecture of the benchmarked export's checkpoint, else the default."""

from __future__ import annotations

import pytest

BATCH = 32


def test_train_step(benchmark, manifest, threads, info, windows):
    torch = pytest.importorskip("torch", reason="training needs torch (pip install 'ecgedge[train]')")
    from ecgedge.bench import checkpoint_path
    from ecgedge.config import ModelConfig
    from ecgedge.models.classifier import RhythmClassifier

    ckpt, _ = checkpoint_path(manifest)
    if ckpt is not None:
        from ecgedge.models.checkpoint import load_checkpoint

        cfg = load_checkpoint(ckpt).model_config
    else:
        cfg = ModelConfig()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n_classes = len(manifest.labels)
    model = RhythmClassifier(cfg, len(manifest.leads), n_classes).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(windows(BATCH))
    y = torch.arange(BATCH) % n_classes

    def step() -> float:
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    benchmark.group = "training"
    benchmark.extra_info.update(info, batch=BATCH, params=sum(p.numel() for p in model.parameters()), provider=f"torch {torch.__version__}")
    loss = benchmark(step)
    assert loss == loss  # finite, not NaN
