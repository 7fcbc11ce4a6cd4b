"""`python -m trainwell` (and `torchrun ... -m trainwell train ...`): the command line."""

from .cli import run

run()
