"""``python -m paysim`` runs the command-line interface."""

from paysim.cli import app

app(prog_name="paysim")
