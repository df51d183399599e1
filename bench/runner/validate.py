"""Checks on a composed config, before anything is built or written. Each failure is a
BenchError whose one line names the fix."""

from __future__ import annotations

import functools
from numbers import Number

from omegaconf import DictConfig, ListConfig

from bench import BenchError
from bench.config import CONF_DIR, option_defaults

# Parsing a yaml costs milliseconds; a sweep validates thousands of runs of the same few options.
_defaults = functools.lru_cache(maxsize=256)(option_defaults)


def _is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def _check_types(node: DictConfig, defaults: DictConfig, where: str) -> None:
    """A value whose yaml default is a number must still be a number (`optimizer.lr=abc`)."""
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


def _positive_int(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = cfg[key]
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BenchError(f"{key} must be a positive integer, got {value!r}; e.g. {key}=100")


def validate(cfg: DictConfig) -> None:
    _positive_int(cfg, "steps")
    _positive_int(cfg, "eval_every", allow_none=True)
    _positive_int(cfg, "log_every", allow_none=True)
    if not isinstance(cfg.seed, int):
        raise BenchError(f"seed must be an integer, got {cfg.seed!r}")
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 0:
        raise BenchError(f"batch_size must be an integer >= 0 (0 = full batch), got {cfg.batch_size!r}")
    for group in ("task", "optimizer"):
        name = cfg[group].get("name")
        if name and (CONF_DIR / group / f"{name}.yaml").exists():
            _check_types(cfg[group], _defaults(group, name), group)
    lr = cfg.optimizer.get("lr")
    if lr is not None and (not _is_number(lr) or lr <= 0):
        raise BenchError(f"optimizer.lr must be > 0, got {lr!r}; e.g. optimizer.lr=1e-3")
    if cfg.grad_clip is not None and (not _is_number(cfg.grad_clip) or cfg.grad_clip <= 0):
        raise BenchError(f"grad_clip must be a positive number or null, got {cfg.grad_clip!r}")
