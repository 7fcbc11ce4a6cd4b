"""Child process for the resume tests: trains or resumes, then SIGKILLs itself at a chosen point.

    python resume_child.py train|resume OUT_DIR CONFIG_JSON KILL_JSON

KILL_JSON picks the moment: {"event": "checkpoint", "epoch": 2, "step": 0} (after a given
checkpoint), {"event": "checkpoint", "lr_below": 0.01} (right after a learning-rate drop),
{"event": "epoch_end", "bad_epochs": 1} (inside the early-stopping patience window), or
{"event": "checkpoint", "nth": 3} (the n-th checkpoint), {"event": "checkpoint", "mid_epoch_of": 1}
(the first checkpoint inside epoch index 1). Progress lines go to stdout.
"""

import json
import os
import signal
import sys

from trainwell.runner import resume, train

mode, out, cfg, kill = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
seen = {"checkpoint": 0}


def emit(event, **p):
    if event == "checkpoint":
        seen["checkpoint"] += 1
        print(f"checkpoint {p['epoch']} {p['step']}", flush=True)
    if event != kill.get("event"):
        return
    hit = (
        ("epoch" not in kill or p.get("epoch") == kill["epoch"])
        and ("step" not in kill or p.get("step") == kill["step"])
        and ("lr_below" not in kill or p.get("lr", 1e9) < kill["lr_below"])
        and ("bad_epochs" not in kill or p["state"].bad_epochs == kill["bad_epochs"])
        and ("mid_epoch_of" not in kill or (p.get("epoch") == kill["mid_epoch_of"] and p.get("step", 0) > 0))
        and ("nth" not in kill or seen["checkpoint"] == kill["nth"])
    )
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


if mode == "train":
    train(cfg, out=out, emit=emit)
else:
    resume(out, emit=emit)
