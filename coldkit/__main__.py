"""``python -m coldkit``: the command line, as torchrun starts it (``torchrun ... -m coldkit run``)."""

from coldkit.cli import app

app(prog_name="coldkit")
