"""Experiments that answer a question with a grid of training runs.

- :mod:`ecgedge.experiment.transfer`: does pretraining a CAE on unlabeled records pay off? The
  paper's table (Jang, Kim & Yoon 2021): macro F1 of transfer vs random initialisation as the
  training set shrinks, bootstrapped, with a frozen-encoder arm and the 2-D
  image-CNN baseline (:mod:`ecgedge.experiment.image2d`); on CinC-2017 the challenge score too.
  Its parts, in the order they run: :mod:`~ecgedge.experiment.config` (settings, budgets), :mod:`~ecgedge.experiment.run` (grid,
  folder, resume, cells), :mod:`~ecgedge.experiment.report` (statistics, table, plot, report.md).
"""
