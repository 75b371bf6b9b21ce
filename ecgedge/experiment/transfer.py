"""``ecgedge experiment transfer``: does pretraining on an unlabeled archive pay off on your labels?

The paper's table (Jang, Kim & Yoon, Healthc Inform Res 2021) as a resumable grid, top to bottom:

1. The labelled records' windows through the existing data layer (every format the loaders read,
   12-lead or single-lead); skipped records are listed with their reasons in the report.
2. One stratified, record-level train/test split (``split.json``, ``test_fraction`` 0.2 = the
   paper's 8:2), the same for every cell.
3. The CAE: pretrained here (``OUT/cae/``, reused by a rerun) on ``pretrain_data`` and, with
   ``pretrain_on_train``, the windows of the labelled *training* records (labels unused); the test
   records are excluded by id, and ``cae/split.json`` lists every record it trained on. Or loaded
   from ``cae`` (then the report checks by path whether it saw the test records).
4. For each training fraction f and repeat r, one stratified bootstrap sample: round(f * n_train)
   training records drawn with replacement (``plan.json``). Every arm of a (f, r) pair trains on
   that same sample with the same seed, so the arms differ only in their initialisation (a paired
   design: the per-repeat difference against ``random`` is reported too).
5. Every arm trains with the same recipe (``recipe``: a classify TOML or a shipped model such as
   ``cinc2017-rhythm``; :func:`ecgedge.train.classifier_recipe` through
   :func:`ecgedge.fit_loop.train_epochs`, the loop ``ecgedge train`` uses) for the same epochs (raised
   for tiny samples to ``min_steps`` optimizer steps), and the model after the last epoch is
   evaluated on the test records. There is no early stopping: the bootstrap leaves no validation
   part to select on, and selecting on the test part would flatter every arm.
6. Scores are record-level (window probabilities averaged per record): the challenge score (mean
   F1 of N, A, O, where the labels have them), macro F1, weighted and per-class F1, summarised per
   arm and fraction as the mean and a 95 % Student-t interval over repeats,
   mean ± t(0.975, n-1) * s / sqrt(n), and as paired differences against ``random``.

Arms: ``transfer`` (CAE encoder, fine-tuned), ``random`` (same architecture, random init),
``frozen`` (CAE encoder frozen, head only), ``2d`` (ResNet-18 on the ECG drawn as an image,
ImageNet-initialised from a local ``image_weights`` file, else random; see
:mod:`ecgedge.experiment.image2d`). (A layer-wise-lr arm, the encoder at 0.1 x the head's lr, was
measured on CinC-2017 and did not help: see docs/paper13/.)

Budgets: ``tiny`` (CI: a few dozen records, one repeat), ``small`` (CinC-2017 on 2 CPU cores in
under 30 minutes) and ``paper`` (overnight, under 8 hours); see :data:`BUDGETS`.

The output folder::

    OUT/                 a folder ecgedge owns (house style 20): new, empty or an experiment's, never a user's
      .ecgedge-folder.json  the marker: kind "transfer experiment", the files the experiment wrote
      experiment.json    the config; a rerun with a different one is refused (arms, fractions and repeats may change)
      inputs.json        window-cache key of the labelled records and sha256 of the CAE
      split.json         train / test record ids (fixed for every cell)
      plan.json          the bootstrap sample (record ids, repeats kept) of every (fraction, repeat)
      cells/ARM/frac*-rep*.json   one result per cell, written atomically; a rerun skips them
      cae/               the pretraining run, when pretrained here (split.json: every record it trained on)
      results.json       per arm and fraction: macro, weighted and per-class F1 (mean, CI, values)
      table.md  f1_vs_records.png  report.md
      invocations.jsonl  one line per run of the command: when, how long, how many cells

The code, in the order it runs: :mod:`~ecgedge.experiment.config` (the grid's settings and
budget presets), :mod:`~ecgedge.experiment.run` (the grid, the folder, resume, one cell's
training), :mod:`~ecgedge.experiment.report` (intervals, table, plot, report.md). This module
is the experiment's front page: it gathers their public names.
"""

from ecgedge.experiment.config import BUDGETS, DEFAULT_ARMS, FORMAT, Arm, Budget, BudgetPreset, ExperimentConfig, ImageConfig, recipe_path
from ecgedge.experiment.report import (
    CI_METHOD,
    METRICS,
    PAPER,
    paired_markdown,
    plot_f1_vs_records,
    report_markdown,
    summarise,
    t_interval,
    table_markdown,
    test_records_in_pretraining,
)
from ecgedge.experiment.run import (
    Cell,
    ExperimentResult,
    bootstrap_records,
    cell_epochs,
    cell_seed,
    classify_config,
    config_differences,
    fixed_split,
    grid_cells,
    grid_plan,
    recent_windows,
    run_cell,
    run_experiment,
    write_json_atomic,
)

__all__ = [
    "BUDGETS", "CI_METHOD", "DEFAULT_ARMS", "FORMAT", "METRICS", "PAPER", "Arm", "Budget", "BudgetPreset", "Cell", "ExperimentConfig",
    "ExperimentResult", "ImageConfig", "bootstrap_records", "cell_epochs", "cell_seed", "classify_config", "config_differences",
    "fixed_split", "grid_cells", "grid_plan", "paired_markdown", "plot_f1_vs_records", "recent_windows", "recipe_path",
    "report_markdown", "run_cell", "run_experiment", "summarise", "t_interval", "table_markdown", "test_records_in_pretraining",
    "write_json_atomic",
]
