"""The transfer rhythm classifier: one shared CAE encoder per lead, then a fusion head.

Input (B, leads, samples) of normalised windows. Every lead goes through the same encoder
(weights shared, as pretrained on lead II), giving (B, leads * C, T) once the per-lead feature
maps are stacked. The head fuses leads with a 1x1 Conv1d, looks across time with k=5 Conv1d
layers (dilated per ``ModelConfig.head_dilations``), pools (mean and max over time: the rhythm is in the intervals, wherever they fall in the window)
and maps to class logits. Batch is the only dynamic dimension; reshapes use -1 for it so the
exported ONNX graph keeps a dynamic batch.
"""

from __future__ import annotations

import torch
from torch import nn

from ecgedge.config import ModelConfig
from ecgedge.models.autoencoder import Encoder


class RhythmClassifier(nn.Module):
    def __init__(self, cfg: ModelConfig, n_leads: int, n_classes: int):
        super().__init__()
        self.cfg, self.n_leads, self.n_classes = cfg, n_leads, n_classes
        self.encoder = Encoder(cfg)
        c = cfg.channels[-1] * n_leads
        h = cfg.head_channels
        layers: list[nn.Module] = [nn.Conv1d(c, h, 1, bias=False), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
        for d in cfg.head_dilations:  # k=5 convolutions; dilation widens the view across beats
            layers += [nn.Conv1d(h, h, 5, padding=2 * d, dilation=d, bias=False), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
        self.fuse = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(2 * h, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        samples = x.shape[-1]
        z = self.encoder(x.reshape(-1, 1, samples))  # (B*leads, C, T)
        z = z.reshape(-1, self.n_leads * z.shape[1], z.shape[2])  # (B, leads*C, T)
        f = self.fuse(z)
        pooled = torch.cat([f.mean(dim=-1), f.amax(dim=-1)], dim=1)
        return self.fc(self.dropout(pooled))

    def set_encoder_trainable(self, trainable: bool) -> None:
        """Freeze (``False``) or unfreeze the transferred encoder, BatchNorm statistics included."""
        for p in self.encoder.parameters():
            p.requires_grad = trainable
        self.encoder.train(trainable and self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()  # a frozen encoder keeps its pretrained BatchNorm statistics
        return self
