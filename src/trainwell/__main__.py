"""`python -m trainwell` (and `torchrun ... -m trainwell train ...`): the command line."""

import sys

from .cli import main

sys.exit(main())
