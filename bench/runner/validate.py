"""Checks on a composed config, before anything is built or written. Each failure is a
BenchError whose one line names the fix.

Numbers must be finite (`optimizer.lr=1e400` parses as inf, `nan` as nan: neither is a setting
anyone means), and counts must be ones the run's arithmetic handles: steps at most MAX_STEPS,
where the schedules' float arithmetic is still exact to the step, and seeds that every random
generator accepts. Hyperparameters that only the optimizer or task knows to be wrong are left to
its constructor, which the runner calls before it writes anything (main.py).
"""

from __future__ import annotations

import functools
import math
from numbers import Number

from omegaconf import DictConfig, ListConfig

from bench import BenchError, schema
from bench.config import META_KEYS, option_defaults, option_file

# Parsing a yaml costs milliseconds; a sweep validates thousands of runs of the same few options.
_defaults = functools.lru_cache(maxsize=256)(option_defaults)



def _is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def _number_list(default) -> bool:
    """A list default of numbers (betas, eps pairs) has a fixed length; others (exclude) do not."""
    items = list(default)
    return any(_is_number(x) for x in items) and all(x is None or _is_number(x) for x in items)


def _check_types(node: DictConfig, defaults: DictConfig, where: str) -> None:
    """A value whose yaml default is a number must still be a number (`optimizer.lr=abc`), and a
    list of numbers must keep its length (`optimizer.betas=[0.9]`)."""
    for key, default in defaults.items():
        if key not in node or key.startswith("_"):
            continue
        value = node[key]
        if _is_number(default) and value is not None and not _is_number(value):
            raise BenchError(f"{where}.{key} must be a number, got {value!r}; e.g. {where}.{key}={default}")
        if isinstance(default, bool) and value is not None and not isinstance(value, bool):
            raise BenchError(f"{where}.{key} must be true or false, got {value!r}")
        if isinstance(default, ListConfig) and value is not None and not isinstance(value, ListConfig):
            raise BenchError(f"{where}.{key} must be a list like {list(default)}, got {value!r}")
        if isinstance(default, ListConfig) and value is not None and _number_list(default):
            items = list(value)
            if len(items) != len(default) or not all(x is None or _is_number(x) for x in items):
                raise BenchError(f"{where}.{key} must be a list of {len(default)} numbers like "
                                 f"{list(default)}, got {items}")


def _not_finite(value) -> float | None:
    """The first inf or nan in a value (a list's items, a mapping's values too), else None."""
    items = value.values() if isinstance(value, (DictConfig, dict)) else \
        value if isinstance(value, (ListConfig, list, tuple)) else None
    if items is not None:
        return next((bad for bad in map(_not_finite, items) if bad is not None), None)
    return value if _is_number(value) and not math.isfinite(value) else None


def _check_finite(node: DictConfig, defaults: DictConfig | None, where: str) -> None:
    """Constructor arguments must be finite (`1e400` parses as inf)."""
    for key in node:
        if not isinstance(key, str) or key.startswith("_") or key in META_KEYS:
            continue
        bad = _not_finite(node[key])
        if bad is None:
            continue
        default = defaults.get(key) if defaults is not None else None
        example = f"e.g. {where}.{key}={default}" if default is not None else "use a finite value"
        shown = list(node[key]) if isinstance(node[key], ListConfig) else node[key]
        why = " (numbers beyond 1.8e308 read as inf)" if math.isinf(bad) else ""
        what = "a finite number" if _is_number(shown) else "finite numbers"
        raise BenchError(f"{where}.{key} must be {what}, got {shown!r}{why}; {example}")


def validate(cfg: DictConfig, dirs: tuple = ()) -> None:
    """`dirs`: the user's config folders, whose yamls give the types of their options' keys."""
    for group in ("task", "optimizer"):  # first: top-level keys interpolate them (steps: ${task.budget})
        schema.check_facts(group, cfg[group])  # the keys every yaml of the group shares
    schema.check(cfg)  # the top-level keys: types and bounds from bench/schema.py
    for group in ("task", "optimizer", "schedule"):
        name = cfg[group].get("name")
        defaults = _defaults(group, name, tuple(dirs)) if name and option_file(group, name, tuple(dirs)) else None
        if defaults is not None:
            _check_types(cfg[group], defaults, group)
        _check_finite(cfg[group], defaults, group)
    lr = cfg.optimizer.get("lr")
    if lr is not None and (not _is_number(lr) or lr <= 0):
        raise BenchError(f"optimizer.lr must be > 0, got {lr!r}; e.g. optimizer.lr=1e-3")
