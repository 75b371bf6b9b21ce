"""``ecgedge experiment transfer``: does pretraining on an unlabeled archive pay off on your labels?

The paper's table (Jang, Kim & Yoon, Healthc Inform Res 2021) as a resumable grid, top to bottom:

1. The CAE: pretrained here on ``pretrain_data`` (``OUT/cae/``, reused by a rerun) or loaded from
   ``cae``. It fixes the encoder architecture, the preprocessing and the window length of every arm.
2. Windows of the labelled records through the existing data layer (every format the loaders read,
   12-lead or single-lead); skipped records are listed with their reasons in the report.
3. One stratified, record-level 8:2 train/test split (``split.json``), the same for every cell.
4. For each training fraction f and repeat r, one stratified bootstrap sample: round(f * n_train)
   training records drawn with replacement (``plan.json``). Every arm of a (f, r) pair trains on
   that same sample with the same seed, so the arms differ only in their initialisation (a paired
   design: the per-repeat difference against ``random`` is reported too).
5. Every arm trains for the same epochs, batch size and learning-rate schedule (the classifier's
   :func:`ecgedge.train.classifier_recipe` through :func:`ecgedge.train.train_epochs`, the loop
   ``ecgedge train`` uses) and the model after the last epoch is evaluated on the
   test records. There is no early stopping: the bootstrap leaves no validation part to select on,
   and selecting on the test part would flatter every arm.
6. Scores are record-level (window probabilities averaged per record): macro F1 (the headline),
   weighted F1 and per-class F1, summarised per arm and fraction as the mean and a 95 % Student-t
   interval over repeats, mean ± t(0.975, n-1) * s / sqrt(n).

Arms: ``transfer`` (CAE encoder, fine-tuned), ``random`` (same architecture, random init),
``frozen`` (CAE encoder frozen, head only) and ``2d`` (ResNet-18 on the ECG drawn as an image,
ImageNet-initialised from a local ``image_weights`` file, else random; see
:mod:`ecgedge.experiment.image2d`).

The output folder::

    OUT/
      experiment.json    the config; a rerun with a different one is refused
      inputs.json        window-cache key of the labelled records and sha256 of the CAE
      split.json         train / test record ids (fixed for every cell)
      plan.json          the bootstrap sample (record ids, repeats kept) of every (fraction, repeat)
      cells/ARM/frac*-rep*.json   one result per cell, written atomically; a rerun skips them
      cae/               the pretraining run, when pretrained here
      results.json       per arm and fraction: macro, weighted and per-class F1 (mean, CI, values)
      table.md  f1_vs_fraction.png  report.md
      invocations.jsonl  one line per run of the command: when, how long, how many cells

The code, in the order it runs: :mod:`~ecgedge.experiment.config` (the grid's settings and
budget presets), :mod:`~ecgedge.experiment.run` (the grid, the folder, resume, one cell's
training), :mod:`~ecgedge.experiment.report` (intervals, table, plot, report.md). This module
is the experiment's front page: it gathers their public names.
"""

from ecgedge.experiment.config import BUDGETS, FORMAT, Arm, Budget, BudgetPreset, ExperimentConfig, ImageConfig
from ecgedge.experiment.report import (
    CI_METHOD,
    PAPER,
    plot_f1_vs_fraction,
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
    cell_seed,
    classify_config,
    config_differences,
    fixed_split,
    grid_cells,
    grid_plan,
    run_cell,
    run_experiment,
    write_json_atomic,
)

__all__ = [
    "BUDGETS", "CI_METHOD", "FORMAT", "PAPER", "Arm", "Budget", "BudgetPreset", "Cell", "ExperimentConfig", "ExperimentResult",
    "ImageConfig", "bootstrap_records", "cell_seed", "classify_config", "config_differences", "fixed_split", "grid_cells",
    "grid_plan", "plot_f1_vs_fraction", "report_markdown", "run_cell", "run_experiment", "summarise", "t_interval",
    "table_markdown", "test_records_in_pretraining", "write_json_atomic",
]
