"""The top-level config's schema: a dataclass registered in Hydra's ConfigStore (`bench_schema`,
first in config.yaml's defaults), so Hydra itself refuses a value of the wrong type while it
composes (`steps=abc`, `seed=1.5`, `force=maybe`), and the bounds each field carries in its
metadata are checked by `check` after composition (OmegaConf types have no ranges).

Both kinds of error read the same, one line that names the fix: `message(key, value)`. What a
schema cannot say (the option yamls' own keys, finite numbers, lr > 0) stays in
runner/validate.py. The option groups (task, optimizer, ...) are `Any` here: each option's yaml
is its own schema for its constructor arguments, checked against its defaults by validate; the
keys every task or every optimizer yaml shares (name, budget, the `search:` space, the facts
about an optimizer) have a schema here too (`TaskFacts`, `OptimizerFacts`, checked by `check_facts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from bench import BenchError

#: the most steps a run may have: schedules compute step / total in double precision, which is
#: exact to the step up to 2^53 (~9e15); a run that long would take centuries anyway
MAX_STEPS = 10**15
#: seeds go to torch.manual_seed (int64), numpy (mod 2^32) and python's random, plus offsets
MAX_SEED = 2**62


def _bounds(low=None, high=None, low_open=False, message: str = "") -> dict[str, Any]:
    return {"low": low, "high": high, "low_open": low_open, "message": message}


POSITIVE = "{key} must be a positive integer, got {value!r}; e.g. {key}=100"


@dataclass
class Distributed:
    nproc: int = 1
    trials_per_gpu: Optional[int] = None  # launcher=parallel sets it (default 1): runner/devices.py


@dataclass
class Schema:
    task: Any = None
    optimizer: Any = None
    schedule: Any = None
    logger: Any = None
    steps: int = field(default=1, metadata=_bounds(1, MAX_STEPS, message=POSITIVE))
    batch_size: int = field(default=0, metadata=_bounds(
        0, message="batch_size must be an integer >= 0 (0 = full batch), got {value!r}"))
    eval_every: Optional[int] = field(default=None, metadata=_bounds(1, message=POSITIVE))
    log_every: Optional[int] = field(default=None, metadata=_bounds(1, message=POSITIVE))
    seed: int = field(default=0, metadata=_bounds(-MAX_SEED + 1, MAX_SEED - 1,
                                                  message="seed must be an integer, got {value!r}"))
    device: str = "auto"
    precision: str = "auto"
    # Any, not float: a float type would store grad_clip=1 as 1.0, and change that run's id
    grad_clip: Any = field(default=None, metadata=_bounds(
        0, math.inf, low_open=True, message="grad_clip must be a positive finite number or null, got {value!r}"))
    runs_root: str = "runs"
    force: bool = field(default=False, metadata={"message": "force must be true or false, got {value!r}"})
    progress: str = "auto"
    checkpoint_every: int = field(default=1000, metadata=_bounds(
        0, message="checkpoint_every must be an integer >= 0 (0: only on a signal), got {value!r}"))
    distributed: Any = None  # its keys belong to the launchers (runner/distributed.py, launcher/*.yaml)
    tune: Any = None
    probe: Any = None


FIELDS = {f.name: f for f in fields(Schema)}
#: messages for a value out of range where the type's message does not say why
OUT_OF_RANGE = {
    "steps": "steps must be at most 10^15 (the schedules' arithmetic is exact to the step up to there), got {value}",
    "seed": "seed must be between -2^62 and 2^62 (what every random generator takes), got {value}",
}


def register() -> None:
    """Put the schema in Hydra's ConfigStore (before anything composes bench's config)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="bench_schema", node=Schema)


def message(key: str, value: Any) -> str | None:
    """The one-line error for a value of `key` that its type or bounds refuse; None for a key the
    schema says nothing about."""
    meta = FIELDS[key].metadata if key in FIELDS else {}
    return meta["message"].format(key=key, value=value) if meta.get("message") else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check(cfg: DictConfig) -> None:
    """Every bounded field within its bounds (types were checked while composing; a config put
    together by hand, as a sweep's values are, gets them checked here too)."""
    for key, spec in FIELDS.items():
        meta = spec.metadata
        if "low" not in meta or key not in cfg:
            continue
        try:
            value = cfg[key]
        except ValidationError as exc:  # an interpolated value (steps: ${task.budget}) of the wrong type
            raise BenchError(message(key, OmegaConf.to_container(cfg, resolve=False).get(key)) +
                             f" ({str(exc).splitlines()[0]})") from None
        if value is None and ("Optional" in str(spec.type) or spec.type == "Any"):
            continue
        integral = spec.type in ("int", "Optional[int]")
        if not _is_number(value) or (integral and not isinstance(value, int)):
            raise BenchError(message(key, value))
        low, high = meta["low"], meta["high"]
        too_low = low is not None and (value <= low if meta["low_open"] else value < low)
        too_high = high is not None and (value > high or value == math.inf)
        if too_high or too_low or math.isnan(value):
            if key in OUT_OF_RANGE and (too_high or key == "seed"):
                raise BenchError(OUT_OF_RANGE[key].format(value=value))
            raise BenchError(message(key, value))


@dataclass
class SearchRange:
    """One dimension of a `search:` space: `lr: {low: 1.0e-5, high: 1.0, log: true}`."""
    low: float = MISSING
    high: float = MISSING
    log: bool = False


@dataclass
class OptimizerFacts:
    """The keys every optimizer yaml shares; the others are its constructor's (bench/config.py)."""
    name: Optional[str] = None
    source: Optional[str] = None
    state_per_param: Any = None  # bytes per fp32 parameter, or a label that `state_formula` computes
    paper: Optional[str] = None
    search: Dict[str, SearchRange] = field(default_factory=dict)
    capabilities: Dict[str, bool] = field(default_factory=dict)
    ideal_bytes: Optional[int] = None
    peers: Dict[str, Any] = field(default_factory=dict)
    toy: Dict[str, Any] = field(default_factory=dict)
    state_formula: Optional[str] = None
    color: Optional[str] = None


@dataclass
class TaskFacts:
    """The keys every task yaml shares; the others are its class's constructor arguments."""
    name: Optional[str] = None
    data_source: Optional[str] = None
    budget: Optional[int] = None  # the steps `bench tune` gives each trial
    target: Optional[float] = None  # the metric value that counts as reaching the target
    eval_every: Optional[int] = None


FACTS = {"task": TaskFacts, "optimizer": OptimizerFacts}
_FACT_NODES: dict[str, DictConfig] = {}  # one structured node per group: building it costs more than a merge


def check_facts(group: str, node: DictConfig) -> None:
    """The shared keys of a task or optimizer node have the schema's types; one line otherwise,
    naming the key as it is written in an override (`optimizer.search.lr.low`)."""
    schema = FACTS[group]
    if group not in _FACT_NODES:
        _FACT_NODES[group] = OmegaConf.structured(schema)
    names = {f.name for f in fields(schema)}
    shared = {key: node[key] for key in node if key in names}
    try:
        merged = OmegaConf.merge(_FACT_NODES[group], shared)
    except ConfigKeyError as exc:
        raise BenchError(f"{group}.{exc.full_key}: unknown key; a search range takes low, high and log") from None
    except ValidationError as exc:
        raise BenchError(f"{group}.{exc.full_key} has the wrong type: {str(exc).splitlines()[0]}") from None
    for key, spec in merged.get("search", {}).items():
        missing = [k for k in ("low", "high") if OmegaConf.is_missing(spec, k)]
        if missing:
            raise BenchError(f"{group}.search.{key} needs {' and '.join(missing)}, "
                             "like {low: 1.0e-4, high: 1.0, log: true}")
