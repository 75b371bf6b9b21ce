"""``python -m ecgedge`` (and ``torchrun -m ecgedge``) runs the ``ecgedge`` command."""

from ecgedge.cli.main import app

app(prog_name="ecgedge")
