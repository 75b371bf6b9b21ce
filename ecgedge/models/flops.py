"""Parameter and multiply-accumulate counts per window, from the layers a forward pass runs.

FLOPs are reported as 2 x MACs of Conv1d, ConvTranspose1d and Linear layers (BatchNorm folds
into the convolutions at export; activations and pooling are a rounding error here).
"""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on a single input of ``input_shape`` (no batch dim)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv1d):
            k = mod.kernel_size[0] * (mod.in_channels // mod.groups)
            total += out.numel() * k
        elif isinstance(mod, nn.ConvTranspose1d):
            total += inp[0].numel() * mod.out_channels * mod.kernel_size[0] // mod.groups
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
