"""The one place bench composes configs, with Hydra's public API only.

`composer()` opens Hydra's compose API on bench's config folder (`hydra.initialize_config_dir` +
`hydra.compose`) for as many compositions as a command needs; `compose_config()` is one
composition checked like `bench run` checks it; `composition_error()` turns Hydra's
composition errors into bench's one-line form. `HydraSession` is a sweep's master config and
its launcher: the jobs' configs come from the config loader that the compose API set up
(`GlobalHydra.config_loader()`), and the launcher from `hydra.core.plugins.Plugins`, given a
`hydra.types.HydraContext` whose callbacks are the config's `hydra.callbacks`.

Why the public API rather than a Sweeper plugin: Hydra finds plugins only in a `hydra_plugins`
namespace package, which editable installs (`make install`) expose unreliably, and a tuning sweep
runs two dependent phases (search, then fresh seeds) that a Sweeper's single `sweep()` would
have to hide. The compose API and the plugin registry are documented and stable across Hydra
releases; its private modules are neither.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict

from bench import BenchError, schema
from bench.config import CONF_DIR, GROUPS, accepted_arguments, class_name, option_defaults, resolve_target

schema.register()  # config.yaml's defaults name it: registered before anything composes

#: what a task's constructor gets from the runner, not from its yaml
TASK_RESERVED = ("seed", "device", "batch_size")


@contextlib.contextmanager
def composer() -> Iterator[Callable[[Sequence[str]], DictConfig]]:
    """Compose any number of configs from overrides (`bench run`'s arguments); Hydra's global
    state is clear before and after."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            yield lambda overrides: compose("config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def compose_config(overrides: Sequence[str], what: str = "") -> DictConfig:
    """The config `bench run <overrides>` would run, composed in this process and validated;
    errors are one line (prefixed with `what` where given)."""
    from bench.runner.validate import validate

    prefix = f"{what}: " if what else ""
    try:
        with composer() as make:
            cfg = make(overrides)
    except HydraException as exc:
        raise BenchError(prefix + composition_error(exc, list(overrides))) from exc
    try:
        validate(cfg)
    except BenchError as exc:
        raise BenchError(prefix + str(exc)) from exc
    return cfg


class JobCallbacks:
    """The config's `hydra.callbacks`, called around each job as Hydra calls them (module level
    and built from the config, so launchers can send it to worker processes)."""

    def __init__(self, config: DictConfig):
        from hydra.utils import instantiate

        self.callbacks = [instantiate(c) for c in (OmegaConf.select(config, "hydra.callbacks") or {}).values()]

    def _call(self, hook: str, reverse: bool, **kwargs: Any) -> None:
        for callback in reversed(self.callbacks) if reverse else self.callbacks:
            getattr(callback, hook)(**kwargs)

    def on_job_start(self, **kwargs: Any) -> None:
        self._call("on_job_start", False, **kwargs)

    def on_job_end(self, **kwargs: Any) -> None:
        self._call("on_job_end", True, **kwargs)


class HydraSession:
    """Hydra's config loader and launcher, for one sweep (public API only)."""

    def __init__(self, overrides: list[str]):
        from hydra.types import RunMode

        GlobalHydra.instance().clear()
        self._context = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="bench")
        self._context.__enter__()
        try:
            self.master = compose("config", overrides=list(overrides), return_hydra_config=True)
        except BaseException:
            self.close()
            raise
        with open_dict(self.master):
            self.master.hydra.mode = RunMode.MULTIRUN
        self.loader = GlobalHydra.instance().config_loader()

    def compose(self, overrides: list[str]) -> DictConfig:
        """A job's config, as a launcher would compose it, minus the `hydra` node (as run_job does)."""
        cfg = self.loader.load_sweep_config(self.master, overrides)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    @property
    def in_process(self) -> bool:
        return str(self.master.hydra.launcher._target_).endswith(".BasicLauncher")

    @property
    def launcher_name(self) -> str:
        return str(self.master.hydra.runtime.choices.get("hydra/launcher", "basic"))

    def set_sweep_dir(self, path: Path) -> None:
        """Jobs' own Hydra output (submitit logs) goes under the sweep's directory."""
        extra = [f"hydra.sweep.dir={path}", "hydra.sweep.subdir=."]
        with open_dict(self.master):
            self.master.hydra.sweep.dir = str(path)
            self.master.hydra.sweep.subdir = "."
            self.master.hydra.overrides.hydra = [*self.master.hydra.overrides.hydra, *extra]

    def launcher(self, task_function: Callable[[DictConfig], Any]):
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.plugins import Plugins
        from hydra.types import HydraContext

        HydraConfig.instance().set_config(self.master)
        context = HydraContext(config_loader=self.loader, callbacks=JobCallbacks(self.master))
        return Plugins.instance().instantiate_launcher(hydra_context=context, task_function=task_function,
                                                       config=self.master)

    def close(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None
        GlobalHydra.instance().clear()


#: Hydra plugins bench users reach for, by the option they add: the pip package that installs it
PLUGIN_PACKAGES = {
    "sweeper": {"optuna": "'bench[optuna]'", "nevergrad": "hydra-nevergrad-sweeper", "ax": "hydra-ax-sweeper"},
    "launcher": {"joblib": "hydra-joblib-launcher", "submitit_local": "hydra-submitit-launcher",
                 "submitit_slurm": "hydra-submitit-launcher", "ray_aws": "hydra-ray-launcher",
                 "rq": "hydra-rq-launcher"},
}


def missing_plugin_message(text: str) -> str | None:
    """`hydra/sweeper=X` or `hydra/launcher=X` (directly, or through a launcher preset) naming a
    plugin that is not installed: which package installs it."""
    found = re.search(r"Could not find 'hydra/(sweeper|launcher)/([^']+)'", text)
    if found is None:
        return None
    kind, name = found.groups()
    installed = re.findall(r"^\t(\S+)$", text.split(f"Available options in 'hydra/{kind}':", 1)[-1], re.M)
    have = f" (installed: {', '.join(installed)})" if installed else ""
    package = PLUGIN_PACKAGES[kind].get(name)
    if package is not None:
        return f"the Hydra {kind} {name!r} is not installed; pip install {package}{have}"
    return f"unknown Hydra {kind} {name!r}{have}; a plugin adds its own, e.g. pip install 'bench[optuna]' for optuna"


def chosen_option(group: str, point: list[str]) -> str:
    """The option of a group a composition uses: its override, else config.yaml's default."""
    chosen = next((o.split("=", 1)[1] for o in point if o.split("=", 1)[0].lstrip("+") == group), None)
    defaults = OmegaConf.load(CONF_DIR / "config.yaml").defaults
    return chosen or next(d[group] for d in defaults if isinstance(d, DictConfig) and group in d)


def target_of(group: str, point: list[str]) -> str | None:
    for line in reversed(point):
        key, _, value = line.partition("=")
        if key.lstrip("+") == f"{group}._target_":
            return value
    return None


def unknown_key_message(key: str, point: list[str], dirs: tuple[Path, ...]) -> str:
    group, _, name = key.partition(".")
    if group in ("optimizer", "task") and name:
        chosen = chosen_option(group, point)
        node = option_defaults(group, chosen, dirs)
        target = target_of(group, point) or node._target_
        cls = resolve_target(OmegaConf.create({"_target_": target, "name": chosen}), group)
        named = next((o.split("=", 1)[1] for o in point if o.split("=", 1)[0].lstrip("+") == f"{group}.name"), None)
        chosen = named or (class_name(target) if target != node._target_ else chosen)
        valid = accepted_arguments(cls)
        reserved = TASK_RESERVED if group == "task" else ()
        field = name.split(".", 1)[0]
        if valid is None or field in valid:
            return (f"{group} {chosen} has no {field} in its yaml; use +{group}.{field}=… to add it "
                    f"({target} takes it), or drop the override")
        listing = ", ".join(sorted(valid - set(reserved) - {"params"}))
        kind = "hyperparameter" if group == "optimizer" else "option"
        return f"unknown {group} {kind} {field!r} for {chosen}; valid: {listing} ({target}); drop the override"
    top = [k for k in OmegaConf.load(CONF_DIR / "config.yaml") if k not in ("defaults", "hydra")]
    return f"unknown setting {key!r}; valid top-level keys: {', '.join(top)} (or a group: {', '.join(GROUPS)})"


def composition_error(exc: HydraException, point: list[str], dirs: tuple[Path, ...] = ()) -> str:
    """Hydra's composition error as one line that names the fix."""
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, MissingConfigException):
        return missing_plugin_message(text) or first
    cause = f"{text}\n{exc.__cause__}"
    typed = re.search(r"Value '(.*?)' (?:of type .* could not be converted|is not a valid).*?full_key: (\S+)",
                      cause, re.S)
    if typed is not None:  # the schema refused a value's type: the same line its bounds would give
        value, key = typed.groups()
        return schema.message(key, value) or f"{key} cannot be {value!r}: {first}"
    if "Could not append to config. An item is already at '" in text:
        key = text.split("'")[1]
        return f"{key} is already set; drop the + (`{key}=…` changes it)"
    if "Could not delete from config. '" in text:
        key = text.split("'")[1]
        return f"cannot drop {key}: it is not in the config; drop the ~{key} override"
    if "Could not override '" in text or "Key '" in text:
        key = text.split("'")[1]
        if "Could not override '" not in text:  # "Key 'x' is not in struct": find the full key
            key = next((o.split("=", 1)[0].lstrip("+~") for o in point
                        if o.split("=", 1)[0].lstrip("+~").split(".")[-1] == key), key)
        return unknown_key_message(key, point, dirs)
    return first
