"""Mixed precision on the vectorised path (fastblocks.matmul): under autocast its matmuls run in the
autocast dtype, as the module path's do, while weights, gradients and the loss stay float32.
Tested on the CPU with bfloat16 autocast, entered around train_step (train.amp acts on CUDA only)."""

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from trainwell.fastmlp import MLPStack
from trainwell.losses import MemberLoss
from trainwell.mlp import build_mlp
from trainwell.sections import ModelConfig
from trainwell.stack import ModuleStack

# no dropout: the two paths draw their masks differently (fastblocks.py's byte-rounded rates)
NET = ModelConfig(hidden=[64, 32], norm="batch", dropout=0.0)
K, BATCH, WIDTH = 2, 48, 7


class MatmulDtypes(TorchDispatchMode):
    """Records the operand dtypes of every matmul that runs while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.dtype] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm):
            self.seen += [t.dtype for t in args if isinstance(t, torch.Tensor) and t.dim() == 2]
        return func(*args, **(kwargs or {}))


def models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [build_mlp(NET, (WIDTH,), 1) for _ in range(K)]


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(K, BATCH, WIDTH, generator=g), torch.randn(K, BATCH, 1, generator=g)


def train(stack, amp: bool, steps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` plain SGD steps; the last losses and the weights after them."""
    x, y = data()
    loss = MemberLoss("regression", torch.zeros(K, 1), None)
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            losses = stack.train_step(x, y, loss, [torch.Generator().manual_seed(k) for k in range(K)])
        with torch.no_grad():
            stack.flat -= 0.05 * stack.grad
    return losses, stack.flat.clone()


def test_under_autocast_the_fast_paths_matmuls_run_in_bfloat16_and_the_rest_stays_float32():
    stack = MLPStack(models())
    x, y = data()
    with MatmulDtypes() as spy, torch.autocast("cpu", dtype=torch.bfloat16):
        losses = stack.train_step(x, y, MemberLoss("regression", torch.zeros(K, 1), None), [torch.Generator()] * K)
    # per member: 3 forward matmuls, 3 weight gradients, 2 input gradients; two operands each
    assert spy.seen and set(spy.seen) == {torch.bfloat16} and len(spy.seen) == K * 8 * 2
    assert losses.dtype == stack.grad.dtype == stack.flat.dtype == torch.float32
    assert bool(torch.isfinite(stack.grad).all())
    with MatmulDtypes() as spy:
        stack.train_step(x, y, MemberLoss("regression", torch.zeros(K, 1), None), [torch.Generator()] * K)
    assert set(spy.seen) == {torch.float32}  # without autocast: float32, the unchanged path


def test_fast_and_module_paths_agree_within_bfloat16_rounding_under_autocast():
    full_loss, full = train(MLPStack(models()), amp=False)
    fast_loss, fast = train(MLPStack(models()), amp=True)
    module_loss, module = train(ModuleStack(models()), amp=True)
    assert not torch.equal(fast, full)  # the matmuls did round to bfloat16 (8 significant bits)
    for loss, weights in ((fast_loss, fast), (module_loss, module)):
        assert torch.allclose(loss, full_loss, rtol=1e-2)
        assert (weights - full).norm() / full.norm() < 3e-3
    assert (fast - module).norm() / full.norm() < 3e-3
    assert torch.allclose(fast_loss, module_loss, rtol=1e-2)


def test_eval_outputs_use_the_autocast_they_are_given():
    stack = MLPStack(models())
    x = data()[0][0]
    plain = stack.outputs(x, 16, contextlib.nullcontext, average=False)
    with MatmulDtypes() as spy:
        low = stack.outputs(x, 16, lambda: torch.autocast("cpu", dtype=torch.bfloat16), average=False)
    assert set(spy.seen) == {torch.bfloat16} and low.dtype == torch.float32
    assert not torch.equal(low, plain) and torch.allclose(low, plain, rtol=3e-2, atol=3e-2)
