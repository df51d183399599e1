"""Compose the config once before handing over to Hydra, so that composition errors become one
line that names the fix (Hydra's own message is several lines and exits 1)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import OmegaConf

from bench import BenchError
from bench.config import CONF_DIR, GROUPS, accepted_arguments, choices, option_defaults, resolve_target

HYDRA_FLAGS = {"-m", "--multirun", "--cfg", "-c", "--info", "--resolve", "-p", "--package", "--help", "-h",
               "--hydra-help", "--version", "--run", "-r", "--shell-completion", "-sc", "--config-path", "-cp",
               "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}


def _overrides(args: list[str]) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--cfg", "-c", "--package", "-p", "--info", "--config-path", "-cp", "--config-name", "-cn",
                   "--config-dir", "-cd"):
            skip = arg not in ("--info",)
            continue
        if arg in HYDRA_FLAGS or arg.startswith("-"):
            continue
        out.append(arg)
    return out


def _first_point(overrides: list[str]) -> list[str]:
    """Every sweep replaced by its first value; group choices of every sweep value checked."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    first = []
    for ov in parsed:
        key = ov.get_key_element().lstrip("+~")
        if ov.is_sweep_override():
            values = [str(v) for v in ov.sweep_string_iterator()]
        else:
            values = [ov.get_value_element_as_str()] if not ov.is_delete() else []
        if key in GROUPS:
            for value in values:
                if value not in choices(key):
                    raise BenchError(f"unknown {key} {value!r}; choose one of: {', '.join(choices(key))} "
                                     f"(see `bench list {key}s`)")
        if ov.is_sweep_override():
            prefix = "+" if ov.is_add() else ""
            first.append(f"{prefix}{key}={values[0]}" if values else ov.input_line)
        else:
            first.append(ov.input_line)
    return first


def _unknown_key_message(key: str, overrides: list[str]) -> str:
    group, _, name = key.partition(".")
    if group in ("optimizer", "task") and name:
        chosen = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == group), None)
        chosen = chosen or OmegaConf.load(CONF_DIR / "config.yaml").defaults[GROUPS.index(group)][group]
        node = option_defaults(group, chosen)
        valid = accepted_arguments(resolve_target(node, group))
        listing = sorted((valid or set()) - {"params", "seed", "device", "batch_size"})
        kind = "hyperparameter" if group == "optimizer" else "option"
        return f"unknown {group} {kind} {name!r} for {chosen}; valid: {', '.join(listing)}"
    top = [k for k in OmegaConf.load(CONF_DIR / "config.yaml") if k not in ("defaults", "hydra")]
    return f"unknown setting {key!r}; valid top-level keys: {', '.join(top)} (or a group: {', '.join(GROUPS)})"


def preflight(args: list[str]) -> None:
    overrides = _overrides(args)
    try:
        point = _first_point(overrides)
    except HydraException as exc:
        raise BenchError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from exc
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=point)
    except MissingConfigException as exc:
        raise BenchError(str(exc).splitlines()[0]) from exc
    except HydraException as exc:
        text = str(exc)
        if "Could not override '" in text or "Key '" in text:
            key = text.split("'")[1]
            raise BenchError(_unknown_key_message(key, point)) from exc
        raise BenchError(text.splitlines()[0]) from exc
    finally:
        GlobalHydra.instance().clear()
    from bench.runner.validate import validate

    validate(cfg)
