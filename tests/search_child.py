"""Child process for the search kill test: runs a search and SIGKILLs itself in stack STACK at
epoch EPOCH (after that epoch's halving, before its files are written).

    python search_child.py OUT CONFIG_JSON TRIALS STACK EPOCH
"""

import json
import os
import signal
import sys

import torch

from trainwell.tune import driver

torch.set_num_threads(1)
out, cfg, trials, stack, epoch = (
    sys.argv[1],
    json.loads(sys.argv[2]),
    int(sys.argv[3]),
    int(sys.argv[4]),
    int(sys.argv[5]),
)
calls = {"n": 0}
real = driver.halver


def killing(at, earlier=None):
    hook = real(at, earlier)
    calls["n"] += 1

    def at_epoch_end(t, s):
        hook(t, s)
        if calls["n"] == stack and s.epoch == epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    return at_epoch_end


driver.halver = killing
driver.search(cfg, trials, out=out, seed=1)
