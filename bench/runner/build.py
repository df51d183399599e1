"""Config → the objects of one run: its device, task, model, optimizer and schedule, and the
autocast dtype its precision asks for. Kept apart from `bench.runner.main`, which decides whether
and where a run happens, because building is also what `bench perf` and the experiments reuse
without running anything; every function imports torch where it is called, so importing this
module stays as cheap as deciding that a run is `already done`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from bench import BenchError
from bench.config import check_arguments, constructor_kwargs, resolve_target

if TYPE_CHECKING:
    import torch

    from bench.runner.distributed import World


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"device={name} but no CUDA device is available; use device=cpu or device=auto")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise BenchError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc


def build_task(cfg: DictConfig, device: torch.device):
    cls = resolve_target(cfg.task, "task")
    kwargs = constructor_kwargs(cfg.task)
    kwargs.update(seed=cfg.seed, device=device, batch_size=cfg.batch_size)
    check_arguments(cls, kwargs, "task", cfg.task.name)
    return cls(**kwargs)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    import torch

    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    if precision in ("fp32", "auto"):
        return None
    raise BenchError(f"unknown precision {precision!r}; use auto, fp32 or bf16")


class Rejected(Exception):
    """A constructor refused the configuration's settings (torch's `Invalid beta parameter`, a
    task's impossible size): bad input the user can fix, not a crash."""

    def __init__(self, group: str, name: str, exc: BaseException):
        cause = exc.__cause__ if isinstance(exc, InstantiationException) and exc.__cause__ else exc
        first_line = (str(cause).strip().splitlines() or [""])[0]
        self.error = f"{type(cause).__name__}: {first_line}"
        super().__init__(f"{group} {name} rejected its settings: {self.error} (fix the {group}.* overrides)")


def _constructed(cfg: DictConfig, group: str, make):
    try:
        return make()
    except (ValueError, TypeError, InstantiationException) as exc:
        raise Rejected(group, str(cfg[group].get("name") or cfg[group].get("_target_")), exc) from exc


def build_run(cfg: DictConfig, device: torch.device, world: World):
    import torch

    from bench.optimizers import build_optimizer
    from bench.runner import distributed

    task = distributed.shard_task(_constructed(cfg, "task", lambda: build_task(cfg, device)), world)
    model = _constructed(cfg, "task", task.model)
    distributed.wrap_model(task, model, device)  # DDP when the run is spread over processes
    optimum = getattr(task, "optimum", None)  # f*, for optimizers that need it (Polyak step size)
    optimizer, caps = _constructed(cfg, "optimizer", lambda: build_optimizer(cfg.optimizer, model, optimum))
    if world.ddp and caps.needs_hvp:
        raise BenchError(f"optimizer {cfg.optimizer.name} needs Hessian-vector products, which distributed runs "
                         "do not support here; run it on one device")
    schedule = _constructed(cfg, "schedule", lambda: instantiate(cfg.schedule))
    total = int(cfg.steps)  # read once: a config lookup (an interpolation) costs more than a logreg step
    # LambdaLR evaluates the schedule once here: a schedule that cannot compute is rejected too
    scheduler = _constructed(cfg, "schedule", lambda: torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: schedule(s, total)))
    return task, model, optimizer, caps, scheduler, schedule
