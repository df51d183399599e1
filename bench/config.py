"""Config helpers shared by the runner and the CLI: where the yaml lives, which keys are
metadata rather than constructor arguments, how a config node becomes an object, and the run id."""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench import BenchError

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS = ("task", "optimizer", "schedule", "logger")
#: the optimizer every other one is compared with, unless a command names another (--baseline)
BASELINE = "adamw"

#: facts about an optimizer that tests, `bench perf` and plots read from its yaml: the bytes one
#: element-wise step must move, other packages' implementations of the same algorithm (`peers`),
#: settings for the zoo's toy problems, the state formula when not a plain int, a plot colour
OPTIMIZER_FACTS = frozenset({"ideal_bytes", "peers", "toy", "state_formula", "color"})
#: keys in a task/optimizer/schedule yaml that describe it rather than configure its constructor
META_KEYS = frozenset(
    {"name", "budget", "target", "search", "source", "state_per_param", "paper", "capabilities",
     "data_source", "eval_every", *OPTIMIZER_FACTS}
)
#: keys that change where or how loudly a run is reported, not what it computes
NON_SEMANTIC_KEYS = frozenset({"runs_root", "force", "progress", "logger", "hydra",
                               # how a run is checkpointed, spread over processes or found by a sweep
                               "checkpoint_every", "distributed", "tune"})
#: metadata that never changes a run's result (the search space is how it was chosen, not what ran)
NON_SEMANTIC_META = frozenset({"search", "source", "state_per_param", "paper", "data_source", *OPTIMIZER_FACTS})


def choices(group: str, dirs: tuple[Path, ...] = ()) -> list[str]:
    """Names of the yaml options in a config group: bench's own, plus those in the user's config
    folders (`--config-dir`, `hydra.searchpath`) when given."""
    return sorted({p.stem for d in (CONF_DIR, *dirs) for p in (Path(d) / group).glob("*.yaml")})


def option_file(group: str, name: str, dirs: tuple[Path, ...] = ()) -> Path | None:
    """The yaml Hydra would pick for `group=name`: the first folder of the search path that has
    it (bench's own first, as Hydra searches the primary config folder first)."""
    for d in (CONF_DIR, *dirs):
        path = Path(d) / group / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def description(group: str, name: str, dirs: tuple[Path, ...] = ()) -> str:
    """The first comment line of an option's yaml: its one-line description."""
    for line in (option_file(group, name, dirs) or CONF_DIR / group / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def option_defaults(group: str, name: str, dirs: tuple[Path, ...] = ()) -> DictConfig:
    return OmegaConf.load(option_file(group, name, dirs) or CONF_DIR / group / f"{name}.yaml")


def class_name(target: str) -> str:
    """The name a run of a foreign `_target_` is stored under: its lower-cased class name
    (`torch.optim.NAdam` → `nadam`)."""
    return str(target).rsplit(".", 1)[-1].lower()


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
    import importlib.util
    import logging

    from hydra.utils import get_class  # hydra's instantiate machinery: not for `bench --help` or `bench list`

    # hydra logs a multi-line error of its own before raising: the one line below says it all
    quiet = logging.getLogger("hydra.utils")
    was, quiet.disabled = quiet.disabled, True
    try:
        return get_class(node._target_)
    except Exception as exc:  # ImportError, AttributeError, missing _target_
        where = f"{group} {node.get('name', '?')}: cannot import `{node.get('_target_')}`"
        missing = exc.__cause__ if isinstance(exc.__cause__, ModuleNotFoundError) else exc
        top = str(missing.name).split(".")[0] if isinstance(missing, ModuleNotFoundError) else ""
        if top and importlib.util.find_spec(top) is None:
            raise BenchError(f"{where}: no module named {missing.name!r}; install the package that provides it "
                             f"(e.g. pip install {top}) or fix {group}._target_") from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if top:  # the package is there, the class is not
            module, _, attr = str(node.get("_target_")).rpartition(".")
            first = f"{module} has no {attr}"
        raise BenchError(f"{where} ({first}); fix {group}._target_") from exc
    finally:
        quiet.disabled = was


def check_arguments(cls: type, kwargs: dict[str, Any], group: str, name: str, reserved=()) -> None:
    """Unknown constructor arguments become a one-line error listing the ones the targeted class
    takes, and how to drop the key (it may come from the yaml of another class)."""
    valid = accepted_arguments(cls)
    if valid is None:
        return
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise BenchError(unknown_argument_message(cls, unknown[0], group, name, reserved))


def unknown_argument_message(cls: type, key: str, group: str, name: str, reserved=(), target: str = "") -> str:
    listing = ", ".join(sorted((accepted_arguments(cls) or set()) - set(reserved) - {"params", "self"}))
    kind = "hyperparameter" if group == "optimizer" else "option"
    return (f"unknown {group} {kind} {key!r} for {name}; valid: {listing} "
            f"({target or cls.__module__ + '.' + cls.__qualname__}); drop it with ~{group}.{key}")


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
