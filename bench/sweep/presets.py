"""`bench tune preset=NAME`: a named command line from bench/conf/tune_preset/NAME.yaml (its
`args:`), e.g. the step budgets the AdamW-equivalent speed-up needs. Arguments given after the
preset replace the preset's own with the same key (`preset=speedup_tiny trials=8`)."""

from __future__ import annotations

import shlex

import yaml

from bench import BenchError
from bench.config import CONF_DIR

FOLDER = CONF_DIR / "tune_preset"


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def expand(args: list[str]) -> list[str]:
    """`args` with any `preset=NAME` replaced by that preset's arguments, minus those whose key a
    later argument sets again."""
    out: list[str] = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key != "preset":
            out.append(arg)
            continue
        path = FOLDER / f"{value}.yaml"
        if not value or not path.is_file():
            raise BenchError(f"unknown tune preset {value!r}; presets: {', '.join(names())}")
        preset = shlex.split(str((yaml.safe_load(path.read_text()) or {}).get("args", "")))
        out.extend(preset)
    keys = [a.partition("=")[0] for a in out]
    # the last argument with a key wins: a user's trials=8 after the preset's trials=4
    return [a for i, a in enumerate(out) if keys[i] not in keys[i + 1:] or a.startswith("-")]
