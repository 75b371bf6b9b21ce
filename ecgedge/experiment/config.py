"""The transfer experiment's settings: what the grid compares (:class:`Arm`), how big it is (:class:`Budget`
presets, overridable field by field) and the frozen :class:`ExperimentConfig` that names one grid.

Everything here is validated on construction, so a bad grid fails before any data is read. The
config is stored in the output folder (``experiment.json``) and a rerun with a different one is
refused, except for the grid's extent: arms, fractions and repeats
(:func:`ecgedge.experiment.run.config_differences`). Imports no torch (a ``recipe`` is a TOML file).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from pathlib import Path

from ecgedge.config import (
    STANDARD_12_LEADS,
    ClassifyConfig,
    ClassWeighting,
    DataConfig,
    Device,
    LabelScheme,
    ModelConfig,
    PreprocessConfig,
    WindowConfig,
    config_from_toml,
)
from ecgedge.errors import ConfigError

FORMAT = "ecgedge.experiment.transfer/2"  # experiment.json and results.json (2: paired differences keyed by metric)


@dataclass(frozen=True)
class ImageConfig:
    """The 2d arm's ECG image in pixels (see :mod:`ecgedge.experiment.image2d`); each lead gets ``height_px // leads`` rows."""

    height_px: int = 96
    width_px: int = 128

    def __post_init__(self):
        if self.height_px < 8 or self.width_px < 8:
            raise ConfigError(f"image must be at least 8 x 8 px, got {self.height_px} x {self.width_px}")


class Arm(str, enum.Enum):
    """How the classifier of a cell starts."""

    transfer = "transfer"  # CAE encoder, fine-tuned with the head
    random = "random"  # the same architecture, random initialisation
    frozen = "frozen"  # CAE encoder fixed (weights and BatchNorm statistics); head only
    image2d = "2d"  # ResNet-18 on the ECG drawn as an image (the paper's 2-D transfer baseline)

    @property
    def needs_cae(self) -> bool:
        return self in (Arm.transfer, Arm.frozen)


DEFAULT_ARMS = tuple(Arm)


class Budget(str, enum.Enum):
    tiny = "tiny"
    small = "small"
    paper = "paper"


@dataclass(frozen=True)
class BudgetPreset:
    """Training sizes one ``--budget`` stands for; an explicit flag overrides any of them.

    A cell trains ``epochs`` epochs, or more when its sample is so small that they would take
    fewer than ``min_steps`` optimizer steps (2 % of the records is a handful of batches): every
    arm of a pair gets the same count. ``train_windows_per_record`` and ``test_windows_per_record``
    keep the most recent windows of each record (0: all of them) and set the cost of a cell.
    """

    repeats: int
    epochs: int
    min_steps: int
    pretrain_epochs: int
    batch_size: int
    lr: float
    pretrain_hop: int
    pretrain_max_windows: int
    train_windows_per_record: int
    test_windows_per_record: int
    image: ImageConfig


BUDGETS: dict[Budget, BudgetPreset] = {
    # CI: a few dozen records, one repeat, tiny models built in code; checks the bookkeeping, not the science.
    Budget.tiny: BudgetPreset(
        repeats=1, epochs=1, min_steps=2, pretrain_epochs=1, batch_size=16, lr=3e-3, pretrain_hop=1024, pretrain_max_windows=200,
        train_windows_per_record=1, test_windows_per_record=1, image=ImageConfig(height_px=24, width_px=32),
    ),
    # CinC-2017 (5,221 training records, 1,306 test records, single lead), three 1-D arms x six fractions x 5 repeats,
    # one thread: ~20 min alone; measured 32.8 min on 2 CPU cores shared with another grid and a test run
    # (training 340-630 windows/s, scoring ~1,200 windows/s).
    Budget.small: BudgetPreset(
        repeats=5,  # the fewest the issue allows; the t-interval over 5 is wide but honest
        epochs=3,
        min_steps=30,  # 2 % of CinC-2017 is ~100 records: 2 batches an epoch would leave the head untrained
        pretrain_epochs=4,
        batch_size=64,
        lr=3e-3,  # few epochs: a high one-cycle peak gets the head somewhere
        pretrain_hop=1024,
        pretrain_max_windows=6000,
        train_windows_per_record=1,  # the last 8.2 s of a record: one window, most of a cell's cost
        test_windows_per_record=2,  # the last 16 s: 2,600 scored windows a cell
        image=ImageConfig(height_px=96, width_px=128),  # 8 rows per lead; ResNet-18 costs 4x less than at 224 x 224
    ),
    # Overnight on 2 CPU cores: the three 1-D arms on CinC-2017 take an estimated 3.4 h alone, 6.3 h at the
    # rates of the small run on 2 cores shared with other jobs (< 8 h). The paper's 10 repeats, every pretraining
    # window, 4 training windows (20,000 at 100 %) and all test windows (8,551) of a record.
    Budget.paper: BudgetPreset(
        repeats=10,
        epochs=6,
        min_steps=100,
        pretrain_epochs=10,
        batch_size=64,
        lr=3e-3,
        pretrain_hop=1024,
        pretrain_max_windows=0,
        train_windows_per_record=4,
        test_windows_per_record=0,
        image=ImageConfig(height_px=224, width_px=224),
    ),
}

SIZE_FIELDS = ("repeats", "epochs", "min_steps", "pretrain_epochs", "batch_size", "lr", "pretrain_hop", "pretrain_max_windows",
               "train_windows_per_record", "test_windows_per_record", "image")


def recipe_path(recipe: str) -> Path:
    """The classifier TOML ``recipe`` names: a file, or a shipped model whose folder holds ``classify.toml``."""
    from ecgedge.shipped import shipped_model

    path = Path(recipe)
    if path.is_file():
        return path
    folder = shipped_model(recipe).folder  # an unknown name raises ConfigError listing the shipped ones
    if not (folder / "classify.toml").is_file():
        raise ConfigError(f"shipped model {recipe!r} has no classify.toml to take a recipe from")
    return folder / "classify.toml"


@dataclass(frozen=True)
class ResolvedSettings(BudgetPreset):
    """The :class:`ExperimentConfig` fields a recipe or budget fills, every one set (``ExperimentConfig.resolved``):
    the budget's sizes plus the recipe's classifier, what the runner, the report and the CLI read, typed without ``None``."""

    leads: tuple[str, ...]
    model: ModelConfig
    class_weighting: ClassWeighting
    weight_decay: float
    window: WindowConfig


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole grid. Fields left ``None`` take their value from the ``recipe``, else the ``budget`` preset.

    ``fractions`` are shares of the training records (0, 1]; ``test_fraction`` of the records is
    held out once (0.2 = the paper's 8:2). ``lead`` is the lead the CAE is pretrained on; ``leads``
    those the classifiers read (one lead for single-lead data). Give ``pretrain_data`` (pretrain a
    CAE here) or ``cae`` (reuse one) when an arm needs a CAE; ``pretrain_on_train`` adds the
    windows of the labelled *training* records to the CAE's pretraining (labels unused; the test
    records never). ``threads`` caps torch's CPU threads (0 = torch's default, one per core); on a
    machine shared with other jobs 1 can be many times faster than 2, because OpenMP threads wait
    for each other at every barrier.

    ``recipe`` (a classify TOML, or a shipped model's name such as ``cinc2017-rhythm``) supplies the
    classifier every arm shares: head architecture, class weighting, weight decay, leads, window
    hop, and the lr and batch size unless given here.
    """

    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelScheme = LabelScheme.chapman4
    pretrain_data: DataConfig = field(default_factory=DataConfig)
    pretrain_on_train: bool = False
    cae: str | None = None
    recipe: str | None = None
    leads: tuple[str, ...] | None = None
    lead: str = "II"
    fractions: tuple[float, ...] = (1.0, 0.5, 0.25)
    arms: tuple[Arm, ...] = DEFAULT_ARMS
    budget: Budget = Budget.small
    repeats: int | None = None
    epochs: int | None = None
    min_steps: int | None = None
    pretrain_epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    pretrain_hop: int | None = None
    pretrain_max_windows: int | None = None
    train_windows_per_record: int | None = None
    test_windows_per_record: int | None = None
    image: ImageConfig | None = None
    image_weights: str | None = None
    test_fraction: float = 0.2
    model: ModelConfig | None = None
    class_weighting: ClassWeighting | None = None
    weight_decay: float | None = None
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    window: WindowConfig | None = None
    seed: int = 0
    device: Device = Device.cpu
    threads: int = 0
    out: str = "runs/experiment"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("budget", Budget(self.budget))
        set_("labels", LabelScheme(self.labels))
        set_("device", Device(self.device))
        set_("fractions", tuple(float(f) for f in self.fractions))
        set_("arms", tuple(Arm(a) for a in self.arms))
        # One home for the classifier's defaults: the recipe's ClassifyConfig, else ClassifyConfig's own.
        recipe = config_from_toml(ClassifyConfig, recipe_path(self.recipe)) if self.recipe else ClassifyConfig()
        for name in ("model", "class_weighting", "weight_decay", "window", "leads"):
            if getattr(self, name) is None:
                set_(name, getattr(recipe, name) if self.recipe or name != "leads" else STANDARD_12_LEADS)
        set_("leads", tuple(self.leads))
        set_("class_weighting", ClassWeighting(self.class_weighting))
        for name in ("lr", "batch_size"):
            if getattr(self, name) is None and self.recipe:
                set_(name, getattr(recipe, name))
        preset = BUDGETS[self.budget]
        for name in SIZE_FIELDS:
            if getattr(self, name) is None:
                set_(name, getattr(preset, name))
        if not self.data.paths:
            raise ConfigError("no labelled data: give --data PATH")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"training fractions must lie in (0, 1], got {list(self.fractions)}")
        if len(set(self.fractions)) != len(self.fractions) or len(set(self.arms)) != len(self.arms):
            raise ConfigError("fractions and arms must not repeat")
        if not self.arms:
            raise ConfigError("no arms to run")
        if self.repeats < 1 or self.epochs < 1 or self.pretrain_epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("repeats, epochs, pretrain_epochs and batch_size must be >= 1 and lr > 0")
        if self.min_steps < 0 or self.train_windows_per_record < 0 or self.test_windows_per_record < 0:
            raise ConfigError("min_steps and windows per record must be >= 0 (0: no floor / every window)")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = torch's default), got {self.threads}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.cae and (self.pretrain_data.paths or self.pretrain_on_train):
            raise ConfigError("give --pretrain-data / --pretrain-on-train (pretrain a CAE here) or --cae (reuse one), not both")
        if self.needs_cae and not (self.cae or self.pretrain_data.paths or self.pretrain_on_train):
            needing = ", ".join(a.value for a in self.arms if a.needs_cae)
            raise ConfigError(f"arm(s) {needing} need a CAE: give --pretrain-data PATH and/or --pretrain-on-train to pretrain one, or --cae CKPT")

    @property
    def needs_cae(self) -> bool:
        return any(a.needs_cae for a in self.arms)

    @property
    def resolved(self) -> ResolvedSettings:
        """The fields ``__post_init__`` filled from the recipe or budget, typed as set."""
        return ResolvedSettings(**{f.name: getattr(self, f.name) for f in fields(ResolvedSettings)})

    @property
    def pretrain_paths(self) -> tuple[str, ...]:
        """Where the CAE pretrained here reads records: the archive, then the labelled records when ``pretrain_on_train``."""
        return tuple(self.pretrain_data.paths) + (tuple(self.data.paths) if self.pretrain_on_train else ())
