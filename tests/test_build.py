"""Building a trainer's members: seeded weights that do not depend on what else the process does."""

from __future__ import annotations

import threading

import torch

from trainwell.build import build_models
from trainwell.compose import compose
from trainwell.data.registry import load_data


def weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_members_built_in_two_threads_at_once_get_the_weights_they_get_alone():
    cfg = compose("delivery-quick", sets={"model.hidden": [512, 512, 512]})
    data = load_data(cfg.data)
    seeds = range(16)
    alone = {s: weights(build_models(cfg, data, s)[0]) for s in seeds}
    differ: list[int] = []

    def build(part):
        differ.extend(s for s in part if not torch.equal(weights(build_models(cfg, data, s)[0]), alone[s]))

    threads = [threading.Thread(target=build, args=(seeds[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert differ == []
