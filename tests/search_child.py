"""A search that signals itself in stack STACK at epoch EPOCH (after that epoch's halving, before
its files are written); run as a child process for the kill test, imported for the Ctrl-C test.

    python search_child.py OUT CONFIG_JSON TRIALS STACK EPOCH     (SIGKILLs itself)
"""

import json
import os
import signal
import sys

from trainwell.tune import driver


def signalling_halver(stack: int, epoch: int, sig: int):
    """driver.halver, but the given stack (1-based) sends itself `sig` at the end of `epoch`."""
    calls = {"n": 0}
    real = driver.halver

    def halver(at, earlier=None, **given):
        hook = real(at, earlier, **given)
        calls["n"] += 1

        def at_epoch_end(t, s):
            hook(t, s)
            if calls["n"] == stack and s.epoch == epoch:
                os.kill(os.getpid(), sig)

        return at_epoch_end

    return halver


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    out, cfg, trials, stack, epoch = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:6])
    driver.halver = signalling_halver(stack, epoch, signal.SIGKILL)
    driver.search(cfg, trials, out=out, seed=1)
