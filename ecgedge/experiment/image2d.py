"""The 2-D transfer baseline: ECG windows drawn as grayscale images, classified by a ResNet-18.

The paper's comparison arm (Jang, Kim & Yoon 2021) transfers an ImageNet CNN to ECG plots. Here:

- :func:`raster_from_windows` draws each lead of a (B, leads, samples) window as a trace in its own
  horizontal band, leads stacked top to bottom (I at the top for 12 leads): a ``height_px`` x
  ``width_px`` image, ``height_px // leads`` rows per lead. Each image column covers an equal
  span of the window (linearly resampled when ``width_px`` does not divide the samples) and is
  inked from the lowest to the highest value in that span, one sample into the next column
  included, so the trace is continuous, as a plotter draws it. Each lead is scaled to its band
  by its own range in the window (the windows are already z-scored per lead, so absolute mV are
  not there to keep).
- :class:`ResNet18` is torchvision's ``resnet18`` written out in plain torch with the same module
  names, so a torchvision state dict (``resnet18-f37072d3.pth``) loads key for key; torchvision
  itself is neither needed nor imported.
- :class:`EcgImageClassifier` renders inside ``forward`` (no gradient flows into the drawing) and
  feeds the gray image to all three input channels with ImageNet's per-channel normalisation,
  so it trains and evaluates through the same loop as the 1-D classifier.

:func:`load_imagenet_weights` reads a local file only; nothing is downloaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.hashing import file_sha256

# torchvision's ImageNet normalisation, per RGB channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def rows_per_lead(height_px: int, n_leads: int) -> int:
    """Rows of the image each lead's band gets; at least 2 or the trace is a smudge."""
    rows = height_px // n_leads
    if rows < 2:
        raise ConfigError(f"an image {height_px} px high gives {n_leads} leads {rows} row(s) each; "
                          f"use a height of at least {2 * n_leads} px")
    return rows


@torch.no_grad()
def raster_from_windows(x: torch.Tensor, rows_per_lead: int, width_px: int) -> torch.Tensor:
    """(B, leads, samples) windows -> (B, 1, leads * rows_per_lead, width_px) images, ink 1 on 0."""
    b, leads, samples = x.shape
    span = math.ceil(samples / width_px)
    if span * width_px != samples:  # resample so the columns tile the window exactly
        x = nn.functional.interpolate(x, size=span * width_px, mode="linear", align_corners=True)
    # One sample past each column's span: neighbouring columns share their edge sample, no gaps.
    padded = nn.functional.pad(x, (0, 1), mode="replicate")
    cols = padded.unfold(-1, span + 1, span)  # (B, leads, width, span + 1)
    lo, hi = cols.amin(-1), cols.amax(-1)
    vmin = x.amin(-1, keepdim=True)
    vrange = (x.amax(-1, keepdim=True) - vmin).clamp_min(1e-6)
    scale = rows_per_lead - 1
    top = torch.floor((1 - (hi - vmin) / vrange) * scale)  # row 0 is the top of the band
    bottom = torch.ceil((1 - (lo - vmin) / vrange) * scale)
    r = torch.arange(rows_per_lead, device=x.device, dtype=x.dtype)
    ink = (r >= top[..., None]) & (r <= bottom[..., None])  # (B, leads, width, rows)
    return ink.permute(0, 1, 3, 2).reshape(b, 1, leads * rows_per_lead, width_px).to(x.dtype)


# ----------------------------------------------------------------------------------- ResNet-18


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """torchvision's ``resnet18`` (He et al. 2016), module for module: (B, 3, H, W) -> (B, classes)."""

    layer1: nn.Sequential  # set in a loop (setattr), under torchvision's names
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, n_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = (64, 128, 256, 512)
        c_in = 64
        for i, w in enumerate(widths, start=1):
            stride = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(c_in, w, stride), BasicBlock(w, w, 1)))
            c_in = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, n_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_imagenet_weights(model: ResNet18, path: str | Path) -> str:
    """Copy a torchvision ``resnet18`` state dict from the local file ``path`` into ``model``, all
    but ``fc`` (ours has one output per rhythm class). Returns the file's sha256.

    Accepts a bare state dict, one under ``"state_dict"`` or ``"model"``, and ``module.`` prefixes
    (DataParallel). Every missing key, unexpected key and shape mismatch is collected and reported
    in one :class:`ArtefactError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtefactError(f"--image-weights {path}: file not found (download torchvision's resnet18-f37072d3.pth yourself; nothing is fetched at run time)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise ArtefactError(f"--image-weights {path} is not a loadable torch state dict: {exc}") from None
    if isinstance(raw, dict):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ArtefactError(f"--image-weights {path}: expected a dict of tensors (a torchvision resnet18 state dict)")
    given = {k.removeprefix("module."): v for k, v in raw.items() if not k.removeprefix("module.").startswith("fc.")}
    want = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    optional = {k for k in want if k.endswith("num_batches_tracked")}  # older torchvision files lack them
    missing = sorted(set(want) - set(given) - optional)
    unexpected = sorted(set(given) - set(want))
    shapes = sorted(f"{k} {tuple(given[k].shape)} (expected {tuple(want[k].shape)})"
                    for k in set(want) & set(given) if given[k].shape != want[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{label} {len(items)}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}"
                 for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if items]
        raise ArtefactError(f"--image-weights {path} is not a torchvision resnet18 state dict: " + "; ".join(parts))
    model.load_state_dict(given, strict=False)
    return file_sha256(path)


class EcgImageClassifier(nn.Module):
    """(B, leads, samples) normalised windows -> raster image -> ResNet-18 -> (B, classes) logits."""

    mean: torch.Tensor  # buffers (register_buffer)
    std: torch.Tensor

    def __init__(self, height_px: int, width_px: int, n_leads: int, n_classes: int):
        super().__init__()
        self.n_leads, self.width_px = n_leads, width_px
        self.rows_per_lead = rows_per_lead(height_px, n_leads)
        self.resnet = ResNet18(1000)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.n_classes = n_classes
        self.resnet.fc = nn.Linear(self.resnet.fc.in_features, n_classes)

    def load_imagenet(self, path: str | Path) -> str:
        """ImageNet weights from ``path`` for everything but the classifier layer; returns the file's sha256."""
        return load_imagenet_weights(self.resnet, path)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Dark trace on white paper, (B, 1, H, W) in [0, 1]."""
        return 1.0 - raster_from_windows(x, self.rows_per_lead, self.width_px)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gray = self.images(x)
        return self.resnet((gray - self.mean) / self.std)
