"""One forward pass with hooks: the order in which a model's modules actually run, and which
module's output is the next one's input.

Only leaf modules (no children) are hooked: a container's output is its last child's output, and
hooking both would hide the child. A module "feeds" another when a tensor it returned is a tensor
the other receives: same storage address, shape, strides and dtype, and not changed in place in
between (torch bumps a tensor's `_version` on every in-place write, views included). An in-place
module (ReLU(inplace=True)) returns its input changed, so it becomes that tensor's producer.
Registration order is never used: a model may define modules in one order and call them in another.

The pass runs in train mode (the mode trainwell trains in) under no_grad on a copy-free model: the
modes, BatchNorm's running statistics and torch's random generators are restored afterwards, so a
check leaves the model and any later seeded training exactly as they were.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

TensorKey = tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype, int]


@dataclass
class Call:
    """One call of a leaf module during the pass, in run order."""

    index: int
    name: str  # the module's name in model.named_modules() ("" for the model itself)
    module: nn.Module
    inputs: list[TensorKey]  # keys of the tensor arguments, taken before the module ran
    outputs: list[TensorKey]
    input_ndim: int  # dimensions of the first tensor argument (0 when none)
    output_ndim: int
    fed_by: list["Call"] = field(default_factory=list)  # calls whose outputs this call received
    feeds: list["Call"] = field(default_factory=list)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _key(t: torch.Tensor) -> TensorKey:
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype, t._version)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.pending: dict[int, list[tuple[list[TensorKey], int]]] = {}  # id(module) → inputs of open calls
        self.alive: list[torch.Tensor] = []  # keeps every seen tensor alive, so no address is reused

    def before(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        tensors = _tensors(args) + _tensors(kwargs)
        self.alive += tensors
        keys = [_key(t) for t in tensors]
        self.pending.setdefault(id(module), []).append((keys, tensors[0].ndim if tensors else 0))

    def after(self, name: str, module: nn.Module, output: Any) -> None:
        keys, ndim = self.pending[id(module)].pop()
        tensors = _tensors(output)
        self.alive += tensors
        out_ndim = tensors[0].ndim if tensors else 0
        self.calls.append(Call(len(self.calls), name, module, keys, [_key(t) for t in tensors], ndim, out_ndim))


def link(calls: list[Call]) -> None:
    """Fill fed_by/feeds: each input is matched to the latest call that produced that exact tensor."""
    producer: dict[TensorKey, Call] = {}
    for call in calls:
        for key in call.inputs:
            source = producer.get(key)
            if source is not None and source not in call.fed_by:
                call.fed_by.append(source)
                source.feeds.append(call)
        for key in call.outputs:
            producer[key] = call


@contextlib.contextmanager
def _preserved(model: nn.Module, devices: list[torch.device]) -> Iterator[None]:
    """Modes, buffers (BatchNorm running statistics) and random generators as they were."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    cuda = [d for d in devices if d.type == "cuda"]
    with torch.random.fork_rng(devices=cuda, enabled=True):
        try:
            yield
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            for m, mode in modes:
                m.training = mode


def trace(model: nn.Module, sample: Any) -> list[Call]:
    """Run `model` once on `sample` (a tensor, or a tuple of positional arguments) in train mode and
    return the leaf-module calls in run order, linked by which output fed which input. Errors of the
    forward pass propagate."""
    args = sample if isinstance(sample, tuple) else (sample,)
    recorder = _Recorder()
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue
        handles.append(module.register_forward_pre_hook(recorder.before, with_kwargs=True))
        handles.append(module.register_forward_hook(lambda m, _a, out, name=name: recorder.after(name, m, out)))
    devices = sorted({t.device for t in _tensors(args)}, key=str)
    try:
        with _preserved(model, devices), torch.no_grad():
            model.train()
            model(*args)
    finally:
        for handle in handles:
            handle.remove()
    link(recorder.calls)
    return recorder.calls
