"""Training: CAE pretraining and the transfer rhythm classifier. Importable; the CLI only calls it.

One module per job: :mod:`~ecgedge.train.run_folder` (the run folder, device, seeds, window store),
:mod:`~ecgedge.train.pretraining` (the CAE), :mod:`~ecgedge.train.transfer` (the CAE's encoder into
the classifier), :mod:`~ecgedge.train.classifier` (the rhythm classifier). Scoring lives in
:mod:`ecgedge.evaluate` (the PyTorch reference in :mod:`ecgedge.evaluate.reference`).

One fit loop (:func:`ecgedge.fit_loop.fit`, in its own module) trains both models; what differs
between them is handed to it as a :class:`~ecgedge.fit_loop.Recipe`, a ``validate`` function, what
``best`` means and how a checkpoint is made.

:func:`pretrain` and :func:`fit_classifier` wrap the loop with what comes before (cached windows,
record-level split) and after (held-out evaluation, metrics, plots) in the run folder::

    runs/NAME/
      config.json        the full config (re-runnable: ``--config`` takes the TOML form, config.toml)
      split.json         record ids of train / val / test (and the training subsample)
      data_summary.json  records found / used / skipped with reasons
      history.csv        one row per epoch
      metrics.json       held-out metrics
      best.pt, last.pt   self-describing checkpoints (torch.load(weights_only=True))
      train_state.pt     model, optimizer, schedule and shuffling state after the last completed epoch (--resume)
      plots/*.png

Ctrl-C stops after writing ``last.pt`` and the metrics so far; ``--resume`` goes on after the last
completed epoch and ends with the weights an uninterrupted run would have had.
"""

from ecgedge.train.classifier import (classifier_recipe, classify, evaluate_classifier, fit_classifier, holdout_records,
                                      interrupted_note, selection_score)
from ecgedge.train.pretraining import evaluate_cae, pretrain
from ecgedge.train.run_folder import TrainResult, checked_device
from ecgedge.train.transfer import adopt_cae, classifier_from_init, load_cae

__all__ = ["TrainResult", "adopt_cae", "checked_device", "classifier_from_init", "classifier_recipe", "classify", "evaluate_cae",
           "evaluate_classifier", "fit_classifier", "holdout_records", "interrupted_note", "load_cae", "pretrain", "selection_score"]
