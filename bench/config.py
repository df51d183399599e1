"""Config helpers shared by the runner and the CLI: where the yaml lives, which keys are
metadata rather than constructor arguments, how a config node becomes an object, and the run id."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from bench import BenchError

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS = ("task", "optimizer", "schedule", "logger")

#: keys in a task/optimizer/schedule yaml that describe it rather than configure its constructor
META_KEYS = frozenset(
    {"name", "budget", "target", "search", "source", "state_per_param", "paper", "capabilities",
     "data_source", "eval_every"}
)
#: keys that change where or how loudly a run is reported, not what it computes
NON_SEMANTIC_KEYS = frozenset({"runs_root", "force", "progress", "logger", "hydra",
                               # how a run is checkpointed, spread over processes or found by a sweep
                               "checkpoint_every", "distributed", "tune"})
#: metadata that never changes a run's result (the search space is how it was chosen, not what ran)
NON_SEMANTIC_META = frozenset({"search", "source", "state_per_param", "paper", "data_source"})


def choices(group: str) -> list[str]:
    """Names of the yaml options in a config group."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def description(group: str, name: str) -> str:
    """The first comment line of an option's yaml: its one-line description."""
    for line in (CONF_DIR / group / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def option_defaults(group: str, name: str) -> DictConfig:
    return OmegaConf.load(CONF_DIR / group / f"{name}.yaml")


def constructor_kwargs(node: DictConfig) -> dict[str, Any]:
    """The node's constructor arguments: everything but `_target_`-style and metadata keys.
    Lists become tuples (torch expects `betas=(0.9, 0.999)`)."""
    plain = OmegaConf.to_container(node, resolve=True)
    out = {}
    for key, value in plain.items():
        if key.startswith("_") or key in META_KEYS:
            continue
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def accepted_arguments(cls: type) -> set[str] | None:
    """Keyword arguments a constructor accepts; None when it takes **kwargs (anything goes)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL}


def resolve_target(node: DictConfig, group: str) -> type:
    try:
        return get_class(node._target_)
    except Exception as exc:  # ImportError, AttributeError, missing _target_
        raise BenchError(f"{group} {node.get('name', '?')}: cannot import `{node.get('_target_')}` ({exc})") from exc


def check_arguments(cls: type, kwargs: dict[str, Any], group: str, name: str, reserved=()) -> None:
    """Unknown constructor arguments become a one-line error listing the valid ones."""
    valid = accepted_arguments(cls)
    if valid is None:
        return
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        listing = ", ".join(sorted(valid - set(reserved) - {"params"}))
        raise BenchError(f"unknown {group} hyperparameter {unknown[0]!r} for {name}; valid: {listing}")


def semantic_config(cfg: DictConfig) -> dict[str, Any]:
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain = {k: v for k, v in plain.items() if k not in NON_SEMANTIC_KEYS}
    for group in ("task", "optimizer", "schedule"):
        if isinstance(plain.get(group), dict):
            plain[group] = {k: v for k, v in plain[group].items() if k not in NON_SEMANTIC_META}
    return plain


def run_id(cfg: DictConfig) -> str:
    """Stable, readable id: `<task>-<optimizer>-<hash of the semantic config>`."""
    digest = hashlib.sha256(json.dumps(semantic_config(cfg), sort_keys=True).encode()).hexdigest()[:10]
    return f"{cfg.task.get('name', 'task')}-{cfg.optimizer.get('name', 'opt')}-{digest}"
