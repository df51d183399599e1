"""Shared machinery for optimizers whose update is element-wise per tensor (Lion, AdEMAMix, ...).

A subclass supplies a pure per-tensor `kernel(p, g, *state, **scalars)` that updates `p` and its
state tensors in place, the names of its zero-initialised state tensors, and `scalars(group, step)`:
the Python numbers the kernel needs at this step (lr, bias corrections, flags). Group-level
bookkeeping that must happen once per step (Schedule-Free's averaging weights) goes in
`begin_group(group)`. Reductions inside one tensor (a norm, a mean) are fine in a kernel; a
kernel that needs the tensor's shape (row norms) sets `flatten = False`.

Speed: the kernel is the whole update for one tensor, so `torch.compile` fuses it into one pass
over memory (read p, g, state; write p, state), which is what "at the memory-bandwidth limit"
means. Compilation is optional because it costs seconds of one-time work that a test or a tiny
model never earns back:

  compile="auto"  compile on CUDA, or on CPU when the model has >= AUTO_COMPILE_NUMEL parameters
  compile=True    always compile
  compile=False   eager per-tensor loop (also the fallback when compilation fails)

Compilation happens in the constructor, on scratch tensors of each (device, dtype) in use, so its
cost lands outside the training clock and is reported separately as `compile_time_s`. Tensors are
passed flattened and with dynamic shapes, so one compiled graph serves every parameter shape.
Float hyperparameters reach the compiled kernel as 0-dim tensors (of the parameter's device and
dtype): passed as Python floats, Dynamo would specialise on their values and recompile whenever a
schedule changes lr or a bias correction moves, i.e. every step. Kernels therefore avoid the
`alpha=` / `value=` arguments, which only take Python numbers.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import torch

from bench.optimizers import evaluate_closure

#: below this many parameters an eager step is already cheap and compile time dominates
AUTO_COMPILE_NUMEL = 1_000_000

_COMPILED: dict[tuple[Callable, bool], Callable] = {}


def compiled(kernel: Callable, dynamic: bool) -> Callable:
    """One compiled wrapper per kernel function, shared by every optimizer instance."""
    if (kernel, dynamic) not in _COMPILED:
        _COMPILED[kernel, dynamic] = torch.compile(kernel, dynamic=dynamic, fullgraph=True)
    return _COMPILED[kernel, dynamic]


def cautious(update: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Cautious masking (Liang et al. 2024, Alg. 1 and the authors' code): keep the coordinates where
    the update and the gradient agree in sign, and rescale by d / (nnz + 1) so the update keeps its
    overall size (the +1 keeps an all-disagreeing tensor from dividing by zero)."""
    mask = (update * grad > 0).to(update.dtype)
    return update * mask * (mask.numel() / (mask.sum() + 1))


def as_tensors(scalars: dict[str, Any], like: torch.Tensor, cache: dict) -> dict[str, Any]:
    """Float scalars as 0-dim tensors on like's device and dtype (cached: most values repeat across
    the parameters of one step); bools stay Python values, where specialising is intended."""
    out = {}
    for key, value in scalars.items():
        if isinstance(value, float):
            slot = (key, value, like.device, like.dtype)
            if slot not in cache:
                cache[slot] = torch.tensor(value, device=like.device, dtype=like.dtype)
            value = cache[slot]
        out[key] = value
    return out


def want_compile(setting: Any, params: list[torch.Tensor]) -> bool:
    if isinstance(setting, str):
        setting = setting.lower()
        if setting == "auto":
            on_cuda = any(p.is_cuda for p in params)
            return on_cuda or sum(p.numel() for p in params) >= AUTO_COMPILE_NUMEL
        if setting in ("true", "false"):
            return setting == "true"
        raise ValueError(f"compile must be auto, true or false, not {setting!r}")
    return bool(setting)


#: what a hyperparameter's value must satisfy, by the rule's wording in the error message
RULES: dict[str, Callable[[float], bool]] = {
    "> 0": lambda v: v > 0, ">= 0": lambda v: v >= 0,
    "in [0, 1)": lambda v: 0 <= v < 1, "in (0, 1)": lambda v: 0 < v < 1,
}


class ElementwiseOptimizer(torch.optim.Optimizer):
    """Base class: step counting, lazy state, closure handling, optional compiled kernel, and the
    hyperparameter checks every subclass shares (`validate`)."""

    #: hyperparameter -> the rule it must follow (a RULES key); a sequence (betas) must follow it
    #: element by element. Subclasses add or override entries for their own hyperparameters.
    ranges: dict[str, str] = {"lr": "> 0", "eps": ">= 0", "weight_decay": ">= 0", "betas": "in [0, 1)",
                              "momentum": "in [0, 1)"}

    state_names: tuple[str, ...] = ()
    flatten = True  # kernels see 1-D views unless they need the parameter's shape
    # One graph for every size. A kernel whose reductions run over a size-dependent axis compiles
    # badly with symbolic sizes (AdamSN's subset sums: 10x slower than eager) and sets False:
    # one graph per distinct parameter shape instead.
    dynamic = True

    @staticmethod
    def kernel(p: torch.Tensor, g: torch.Tensor, *state: torch.Tensor, **scalars) -> None:
        raise NotImplementedError

    def scalars(self, group: dict, step: int) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def validate(cls, **values: Any) -> None:
        """One ValueError naming every value outside its range (`ranges`), e.g. `invalid AdamW
        hyperparameters: lr=-1 (must be > 0), betas=(0.9, 1.0) (each must be in [0, 1))`."""
        bad = []
        for key, value in values.items():
            rule = cls.ranges[key]
            many = isinstance(value, (tuple, list))
            if not all(RULES[rule](v) for v in (value if many else (value,))):
                bad.append(f"{key}={tuple(value) if many else value} ({'each ' if many else ''}must be {rule})")
        if bad:
            raise ValueError(f"invalid {cls.__name__} hyperparameters: {', '.join(bad)}")

    def tensor_scalars(self, p: torch.Tensor) -> dict[str, Any]:
        """Per-tensor constants the flattened view hides (e.g. LARS skips vectors)."""
        return {}

    def begin_group(self, group: dict) -> None:
        """Once per group per step, before any parameter of the group is updated."""

    def init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-parameter state; zeros unless a subclass needs otherwise (Schedule-Free's z = x)."""
        return {name: torch.zeros_like(p, memory_format=torch.preserve_format) for name in self.state_names}

    def __init__(self, params, defaults: dict, compile: Any = "auto"):
        super().__init__(params, defaults)
        flat = [p for group in self.param_groups for p in group["params"]]
        self.compile_time_s = 0.0
        self._fn = type(self).kernel
        self.implementation = "loop"
        if want_compile(compile, flat):
            shape = (lambda p: p.dim()) if self.dynamic else (lambda p: tuple(p.shape))
            self._compile({(p.device, p.dtype, shape(p), tuple(self.tensor_scalars(p).items())) for p in flat})

    def _compile(self, kinds: set) -> None:
        fn = compiled(type(self).kernel, self.dynamic)
        if not self.dynamic:  # one graph per shape: allow as many as the model has shapes
            limit = torch._dynamo.config.recompile_limit
            torch._dynamo.config.recompile_limit = max(limit, len(kinds) + 8)
        start = time.perf_counter()
        try:
            group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
            self.begin_group(group)  # on a copy: warming up must not advance the real step count
            for device, dtype, shape, extra in kinds:  # warm every variant in use now, off the clock
                # Mirror step() exactly (no_grad, a leaf that requires grad, flattened views of a
                # base with the parameter's rank): Dynamo guards on all of it, and any mismatch
                # would recompile during the first training step.
                shape = (4,) * shape if isinstance(shape, int) else shape
                param = torch.ones(shape, device=device, dtype=dtype, requires_grad=True)
                grad = torch.ones_like(param)
                initial = self.init_state(param.detach())
                state = [initial[name] for name in self.state_names]
                scalars = as_tensors({**self.scalars(group, 1), **dict(extra)}, param, {})
                with torch.no_grad():
                    if self.flatten:
                        fn(param.view(-1), grad.view(-1), *(t.view(-1) for t in state), **scalars)
                    else:
                        fn(param, grad, *state, **scalars)
        except Exception as exc:  # no compiler toolchain, unsupported backend: stay correct, go slower
            warnings.warn(f"{type(self).__name__}: torch.compile failed, using the eager loop ({exc})", stacklevel=3)
            return
        self.compile_time_s = time.perf_counter() - start
        self._fn, self.implementation = fn, "compiled"

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = evaluate_closure(closure)
        fast = self.implementation == "compiled"
        cache: dict = {}
        for group in self.param_groups:
            self.begin_group(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state.update(self.init_state(p), step=0)
                state["step"] += 1
                tensors = [state[name] for name in self.state_names]
                scalars = {**self.scalars(group, state["step"]), **self.tensor_scalars(p)}
                if fast and self.flatten and p.is_contiguous() and all(t.is_contiguous() for t in tensors):
                    scalars = as_tensors(scalars, p, cache)
                    self._fn(p.view(-1), p.grad.reshape(-1), *(t.view(-1) for t in tensors), **scalars)
                elif fast and not self.flatten:
                    self._fn(p, p.grad, *tensors, **as_tensors(scalars, p, cache))
                else:
                    type(self).kernel(p, p.grad, *tensors, **scalars)
        return loss


class AdamStyle(ElementwiseOptimizer):
    """An element-wise optimizer configured exactly like Adam: lr, betas (two), eps, weight decay.
    A subclass states its own defaults (`adam_defaults`, from its paper) and the step-dependent
    scalars its kernel needs beyond those five (`step_scalars`)."""

    adam_defaults: dict[str, Any] = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}

    def __init__(self, params, lr: float | None = None, betas: tuple[float, float] | None = None,
                 eps: float | None = None, weight_decay: float | None = None, compile="auto"):
        given = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        values = {k: self.adam_defaults[k] if v is None else v for k, v in given.items()}
        values["betas"] = tuple(values["betas"])
        self.validate(**values)
        super().__init__(params, values, compile)

    def step_scalars(self, lr: float, beta1: float, beta2: float, step: int) -> dict[str, Any]:
        raise NotImplementedError

    def scalars(self, group: dict, step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    **self.step_scalars(group["lr"], beta1, beta2, step))
