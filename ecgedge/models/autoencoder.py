"""The 1-D convolutional autoencoder (CAE) pretrained on single-lead windows.

Encoder: ``len(channels)`` blocks of Conv1d(kernel k, stride 2, same padding) + BatchNorm + ReLU,
so a (B, 1, 2048) window becomes a (B, channels[-1], 2048 / 2**blocks) feature map (16 x 64 by
default: a 2x bottleneck). Decoder: the mirror image with ConvTranspose1d(kernel 4, stride 2,
padding 1), which exactly doubles the length, and a final 1x1 Conv1d back to one channel.
Only standard ONNX ops (Conv, ConvTranspose, BatchNormalization folded at export, Relu).
"""

from __future__ import annotations

import torch
from torch import nn

from ecgedge.config import ModelConfig


def _block(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, k, stride=2, padding=k // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """(B, 1, samples) normalised ECG -> (B, channels[-1], samples / 2**blocks) features."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chans = (1, *cfg.channels)
        self.blocks = nn.Sequential(*[_block(chans[i], chans[i + 1], k) for i, k in enumerate(cfg.kernels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chans = (*cfg.channels[::-1], cfg.channels[0])
        layers: list[nn.Module] = []
        for i in range(len(cfg.channels)):
            layers += [
                nn.ConvTranspose1d(chans[i], chans[i + 1], 4, stride=2, padding=1, bias=False),
                nn.BatchNorm1d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv1d(chans[-1], 1, 1))
        self.blocks = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(z)


class ConvAutoencoder(nn.Module):
    """Reconstructs a (B, 1, samples) window; ``samples`` must be a multiple of ``cfg.downsampling``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
