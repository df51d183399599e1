"""Compose the config before handing over to Hydra, so that composition errors become one line
that names the fix (Hydra's own message is several lines and exits 1).

The user's config folders (`--config-dir DIR`, `hydra.searchpath=[file://DIR]`) are searched as
Hydra searches them, after bench's own. A sweep (`-m`) is checked whole before its first job
runs: every combination of group choices is composed (one at a time when there are many), and
every value of every other swept key is validated against each of them. A `_target_` overridden
without a name gets one derived from its class, so the run is not stored under the yaml's name.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict

from bench import BenchError
from bench.compose import TASK_RESERVED, chosen_option, composer, composition_error, target_of
from bench.config import (
    GROUPS,
    accepted_arguments,
    choices,
    class_name,
    constructor_kwargs,
    option_defaults,
    resolve_target,
    unknown_argument_message,
)
from bench.runner.sweepers import chosen_sweeper, sweeper_defaults, task_mode

HYDRA_FLAGS = {"-m", "--multirun", "--cfg", "-c", "--info", "--resolve", "-p", "--package", "--help", "-h",
               "--hydra-help", "--version", "--run", "-r", "--shell-completion", "-sc", "--config-path", "-cp",
               "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}
#: flags followed by a value
VALUED = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")
#: flags that only print: the classes they name need not import
PRINT_ONLY = ("--cfg", "-c", "--info", "--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc")
#: group choices swept together in every combination up to this many; beyond, one at a time
MAX_COMBINATIONS = 16
_ABSENT = object()


def _overrides(args: list[str]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in VALUED:
            skip = True
            continue
        if arg in HYDRA_FLAGS or arg.startswith("-"):
            continue
        out.append(arg)
    return out


def _config_dirs(args: list[str]) -> list[str]:
    """The `--config-dir`/`-cd` folders of a command line (Hydra takes the last one)."""
    found = []
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd"):
            if i + 1 >= len(args):
                raise BenchError(f"{arg} needs a folder: {arg} DIR, with DIR/optimizer/NAME.yaml or DIR/task/NAME.yaml")
            found.append(args[i + 1])
        elif arg.startswith("--config-dir="):
            found.append(arg.split("=", 1)[1])
    return found[-1:]


def _folder(entry: str, how: str) -> Path | None:
    """The folder behind a search path entry (file://DIR, pkg://module, or a plain path)."""
    if entry.startswith("pkg://"):
        import importlib.util

        try:
            spec = importlib.util.find_spec(entry[len("pkg://"):].replace("/", ".").strip("."))
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise BenchError(f"{how}: cannot find the package {entry[len('pkg://'):]!r}; use file://DIR for a folder")
        return Path(locations[0])
    path = Path(entry[len("file://"):] if entry.startswith("file://") else entry)
    if not path.is_dir():
        raise BenchError(f"{how}: no folder {str(path)!r} (from {os.getcwd()}); give the folder that holds "
                         f"optimizer/ or task/ with your yaml files")
    if not any((path / g).is_dir() for g in GROUPS):
        raise BenchError(f"{how}: {str(path)!r} has no {'/, '.join(GROUPS)}/ folder; put a yaml for "
                         f"`optimizer=NAME` in {path}/optimizer/NAME.yaml")
    return path


def search_path(args: list[str]) -> tuple[list[str], tuple[Path, ...]]:
    """(search path entries for Hydra's compose, their folders) from `--config-dir` and a
    `hydra.searchpath=[...]` override, in Hydra's order: the config dir first."""
    entries = [f"file://{os.path.abspath(d)}" for d in _config_dirs(args)]
    for line in _overrides(args):
        if line.split("=", 1)[0].lstrip("+") == "hydra.searchpath":
            try:
                value = OverridesParser.create().parse_overrides([line])[0].value()
            except HydraException as exc:
                raise BenchError(f"cannot parse {line!r}: {str(exc).splitlines()[0]}; e.g. "
                                 "hydra.searchpath=[file://DIR]") from exc
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BenchError(f"hydra.searchpath must be a list of folders, got {value!r}; e.g. "
                                 "hydra.searchpath=[file://DIR]")
            entries += value
    how = {e: "--config-dir" for e in entries[: len(_config_dirs(args))]}
    folders = tuple(_folder(e, how.get(e, "hydra.searchpath")) for e in entries)
    return entries, folders


class _Sweep:
    """The command's overrides split like Hydra's basic sweeper splits them: fixed ones, and the
    swept keys with their values (group choices and `_target_`s apart from the rest)."""

    def __init__(self, overrides: list[str], dirs: tuple[Path, ...]):
        try:
            parsed = OverridesParser.create().parse_overrides(overrides)
        except HydraException as exc:
            raise BenchError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from exc
        self.fixed: list[str] = []
        self.structural: list[list[str]] = []  # group choices and classes: each value composed
        self.values: list[tuple[str, list[str]]] = []  # other swept keys: each value validated
        for ov in parsed:
            key = ov.get_key_element()
            bare = key.lstrip("+~")
            if bare == "hydra.searchpath":
                continue  # given to compose separately
            if not ov.is_sweep_override():
                self.fixed.append(ov.input_line)
                values = [] if ov.is_delete() else [ov.get_value_element_as_str()]
            elif ov.is_interval_sweep():
                # a sweeper (Optuna, Nevergrad) samples inside it: check both ends, as values
                if bare in GROUPS:
                    raise BenchError(f"{ov.input_line}: a config group takes a list of options, not an interval; "
                                     f"e.g. {bare}=a,b or {bare}=glob(*)")
                interval = ov.value()
                ends = [int(v) if "int" in interval.tags else v for v in (interval.start, interval.end)]
                self.values.append((bare, [f"{key}={v!r}" for v in ends]))
                continue
            else:
                values = self._enumerate(ov, bare, dirs)
                lines = [f"{key}={v}" for v in values]
                if bare in GROUPS or bare.endswith("._target_") or bare.startswith("hydra."):
                    self.structural.append(lines)
                else:
                    self.values.append((bare, lines))
            if bare in GROUPS:
                for value in values:
                    if value not in choices(bare, dirs):
                        raise BenchError(f"unknown {bare} {value!r}; choose one of: {', '.join(choices(bare, dirs))} "
                                         f"(see `bench list {bare}s`, or add {bare}/{value}.yaml to a folder "
                                         "given with --config-dir)")

    @staticmethod
    def _enumerate(ov, bare: str, dirs: tuple[Path, ...]) -> list[str]:
        """The values of a choice, range or glob sweep (tags aside). A glob picks among a config
        group's options, as Hydra's basic sweeper expands it."""
        if isinstance(ov.value(), Glob):
            if bare not in GROUPS:
                raise BenchError(f"{ov.input_line}: glob() picks options of a config group ({', '.join(GROUPS)}); "
                                 f"for {bare} list the values: {bare}=a,b,c")
            picked = ov.value().filter(choices(bare, dirs))
            if not picked:
                raise BenchError(f"{ov.input_line} matches no {bare}; choose among: {', '.join(choices(bare, dirs))}")
            return picked
        try:
            return list(ov.sweep_string_iterator())
        except HydraException as exc:  # a sweep Hydra's basic sweeper cannot enumerate either
            raise BenchError(f"{ov.input_line}: {str(exc).splitlines()[0]}") from exc

    def combinations(self) -> list[list[str]]:
        """Overrides of each composition: every combination of the structural sweeps when there
        are few, else each value once (the others at their first); other sweeps at their first."""
        firsts = [axis[0] for _, axis in self.values]
        total = 1
        for axis in self.structural:
            total *= len(axis)
        if total <= MAX_COMBINATIONS:
            combos = [list(c) for c in itertools.product(*self.structural)]
        else:
            base = [axis[0] for axis in self.structural]
            combos = [base] + [base[:i] + [v] + base[i + 1:] for i, axis in enumerate(self.structural) for v in axis[1:]]
        return [[*self.fixed, *combo, *firsts] for combo in combos]

    def swept(self, point: list[str]) -> list[str]:
        """The swept part of a composition's overrides, to name it in an error."""
        return [o for o in point[len(self.fixed):] if any(o in axis for axis in self.structural) and
                any(len(axis) > 1 for axis in self.structural if o in axis)]


def _derive_name(cfg: DictConfig, group: str, point: list[str], dirs: tuple[Path, ...]) -> str | None:
    """The name a run whose `_target_` was overridden without a name must carry, else None."""
    if any(o.split("=", 1)[0].lstrip("+~") == f"{group}.name" for o in point):
        return None
    target = str(cfg[group].get("_target_"))
    if target == str(option_defaults(group, chosen_option(group, point), dirs).get("_target_")):
        return None
    derived = class_name(target)
    if derived in choices(group, dirs):
        theirs = str(option_defaults(group, derived, dirs).get("_target_"))
        if theirs != target:
            raise BenchError(f"{group}._target_={target} would be stored as {group} {derived!r}, which is "
                             f"already {theirs}; name it: {group}.name=…")
    return derived


def _check_arguments(cfg: DictConfig, group: str, point: list[str]) -> None:
    """Keys the targeted class does not take: from the yaml (drop with ~), or from an override."""
    cls = resolve_target(cfg[group], group)
    kwargs = constructor_kwargs(cfg[group])
    reserved = TASK_RESERVED if group == "task" else ()
    valid = accepted_arguments(cls)
    unknown = [] if valid is None else sorted(set(kwargs) - valid - set(reserved))
    if unknown:
        message = unknown_argument_message(cls, unknown[0], group, str(cfg[group].get("name")), reserved,
                                           target=str(cfg[group]._target_))
        given = [o for o in point if o.split("=", 1)[0].lstrip("+").split(".")[:2] == [group, unknown[0]]]
        if given:
            message = message.rsplit("; drop it with", 1)[0] + f"; drop the override {given[0].split('=', 1)[0]}"
        raise BenchError(message)


def _value_configs(cfg: DictConfig, sweep: _Sweep):
    """The composed config with each other value of each non-structural swept key put in, one
    at a time (the key is the same for all its values, so Hydra accepts them all alike). One
    resolved copy is changed in place and restored: copying and re-resolving the config for each
    of a hundred seeds would take seconds. (A value that other keys interpolate, `task.budget`
    for `steps`, is checked as itself only; the run checks the rest.)"""
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for _key, axis in sweep.values:
        for line in axis[1:]:
            ov = OverridesParser.create().parse_overrides([line])[0]
            key = ov.get_key_element().lstrip("+~")
            if key.startswith("hydra."):
                continue
            before = OmegaConf.select(plain, key, default=_ABSENT)
            with open_dict(plain):
                OmegaConf.update(plain, key, ov.value(), merge=False, force_add=True)
                try:
                    yield line, plain
                finally:
                    if before is _ABSENT:
                        parent, _, leaf = key.rpartition(".")
                        node = OmegaConf.select(plain, parent) if parent else plain
                        del node[leaf]
                    else:
                        OmegaConf.update(plain, key, before, merge=False)


def preflight(args: list[str], derive_names: bool = False) -> list[str]:
    """Check a `bench run` command line; returns the Hydra overrides to add (a derived name).
    derive_names=False (`bench tune`): a `_target_` without a name is refused instead."""
    from bench.runner.main import finished_summary
    from bench.runner.validate import validate

    entries, dirs = search_path(args)
    sweep = _Sweep(_overrides(args), dirs)
    searchpath = [f"hydra.searchpath=[{','.join(entries)}]"] if entries else []
    check_classes = not any(a in PRINT_ONLY for a in args)
    derived: dict[str, set[str]] = {"optimizer": set(), "task": set()}
    # the Optuna sweeper's direction needs the task's mode (its class: torch); others do not
    sweeper_mode = task_mode if chosen_sweeper(sweep.fixed) == "optuna" else (lambda cfg: None)
    modes: set[str | None] = set()
    seed = None
    try:
        with composer() as make:
            points = sweep.combinations()
            for point in points:
                where = " ".join(sweep.swept(point))
                prefix = f"in the sweep's runs with {where}: " if where and len(points) > 1 else ""
                try:
                    cfg = make([*searchpath, *point])
                except HydraException as exc:
                    raise BenchError(prefix + composition_error(exc, point, dirs)) from exc
                try:
                    renamed = []  # what cli.run adds to the arguments Hydra gets
                    for group in derived:
                        name = _derive_name(cfg, group, point, dirs)
                        if name is not None:
                            derived[group].add(name)
                            renamed.append(f"++{group}.name={name}")
                            with open_dict(cfg):
                                cfg[group].name = name
                    validate(cfg, dirs)
                    # a finished run is not built again: its classes need not import (that is torch)
                    single = derive_names and len(points) == 1 and not sweep.values
                    if check_classes and finished_summary(cfg, [*args, *renamed] if single else None) is None:
                        for group in derived:
                            _check_arguments(cfg, group, point)
                except BenchError as exc:
                    raise BenchError(prefix + str(exc)) from exc
                modes.add(sweeper_mode(cfg))
                seed = cfg.seed if seed is None else seed
                for line, other in _value_configs(cfg, sweep):
                    try:
                        validate(other, dirs)
                    except BenchError as exc:
                        raise BenchError(f"in the sweep's runs with {' '.join([where, line]).strip()}: {exc}") from exc
    except MissingConfigException as exc:
        raise BenchError(str(exc).splitlines()[0]) from exc
    extra = []
    for group, names in derived.items():
        if len(names) > 1:
            raise BenchError(f"a sweep over {group}._target_ needs a name per class; give each class its own "
                             f"{group}/NAME.yaml in a folder passed with --config-dir")
        if names:
            name = names.pop()
            target = target_of(group, sweep.fixed) or f"{group}._target_"
            if not derive_names:
                raise BenchError(f"{group}._target_={target} needs a name, or its runs are stored under the "
                                 f"yaml's; add {group}.name={name}")
            extra.append(f"++{group}.name={name}")
            print(f"note: {group}._target_={target}: stored as {group} {name!r} ({group}.name=… names it "
                  "otherwise)", file=sys.stderr)
    return extra + sweeper_defaults(sweep.fixed, modes - {None}, seed)
