"""`bench tune`'s command line: the budget options (trials, studies, seeds, search, ...), the
fixed overrides and the sweep axes, each checked with a one-line error before anything runs."""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from bench import BenchError
from bench.sweep import presets
from bench.sweep.plan import SEARCH_METHODS, Budget

# name → smallest allowed value; seeds also takes `auto`, which the last two tune
OPTIONS = {"trials": 1, "studies": 1, "seeds": 0, "search_seed": 0, "max_seeds": 1, "seed_step": 1}
AUTO_ONLY = ("max_seeds", "seed_step")
FORBIDDEN = {"seed": "one base seed only: study s trains with seed+s, the seeds phase with seed+studies+i",
             "force": "a sweep reuses finished runs; use another runs_root for a fresh sweep"}


def _config_dir_as_searchpath(args: list[str]) -> list[str]:
    """`--config-dir DIR` / `-cd DIR` as in `bench run`: tune composes with Hydra's compose API,
    which takes user folders as `hydra.searchpath`, so the flag becomes that override."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg in ("--config-dir", "-cd") or arg.startswith("--config-dir="):
            folder = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            if not folder:
                raise BenchError(f"{arg} needs a folder: {arg} DIR, with DIR/optimizer/NAME.yaml or DIR/task/NAME.yaml")
            out.append(f"hydra.searchpath=[file://{Path(folder).resolve()}]")
            i += 1 if "=" in arg else 2
            continue
        out.append(arg)
        i += 1
    return out


def parse_args(args: list[str]) -> tuple[Budget, list[str], list[list[str]]]:
    """(budget, fixed overrides, sweep axes) of a `bench tune` command line."""
    budget: dict[str, int | bool | str] = {}
    overrides = []
    for arg in _config_dir_as_searchpath(presets.expand(args)):
        key, eq, value = arg.partition("=")
        if arg.startswith("-") or not eq:
            raise BenchError(f"bench tune takes key=value arguments, got {arg!r}; see `bench tune --help`")
        if key == "seeds" and value == "auto":
            budget["auto"] = True
        elif key == "search":
            if value not in SEARCH_METHODS:
                raise BenchError(f"search must be one of {', '.join(SEARCH_METHODS)}, got {value!r}")
            budget["search"] = value
        elif key in OPTIONS:
            if not value.isdigit() or int(value) < OPTIONS[key]:
                also = " or auto" if key == "seeds" else ""
                raise BenchError(f"{key} must be an integer >= {OPTIONS[key]}{also}, got {value!r}")
            budget[key] = int(value)
        else:
            overrides.append(arg)
    for key in AUTO_ONLY:
        if key in budget and not budget.get("auto"):
            raise BenchError(f"{key} applies to seeds=auto only; add seeds=auto or drop {key}")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise BenchError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from exc
    fixed, axes = [], []
    for ov in parsed:
        key = ov.get_key_element().lstrip("+~")
        if key.startswith("tune.") or key == "tune":
            raise BenchError(f"{key} is set by bench tune itself")
        if ov.is_sweep_override():
            if key in FORBIDDEN:
                raise BenchError(f"cannot sweep {key} in bench tune: {FORBIDDEN[key]}")
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            if key == "force":
                raise BenchError(f"force is not supported by bench tune: {FORBIDDEN['force']}")
            fixed.append(ov.input_line)
    if not any(o.startswith("progress=") for o in fixed):
        fixed.append("progress=off")  # one line per run instead of a progress bar each
    return Budget(**budget), fixed, axes
