"""Performance benchmarks of bench itself (`bench perf ...`). Each measurement compares bench
with a plain-PyTorch reference in the same process, alternating the two, and reports the ratio
of their medians: absolute times on a shared machine drift, ratios measured side by side do not.
"""

from __future__ import annotations

from omegaconf import DictConfig

from bench import BenchError
from bench.config import CONF_DIR


def compose_config(overrides: list[str]) -> DictConfig:
    """The config `bench run <overrides>` would run, composed in this process."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from bench.runner.validate import validate

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
    except HydraException as exc:
        raise BenchError(f"cannot compose {' '.join(overrides)}: {str(exc).splitlines()[0]}") from exc
    finally:
        GlobalHydra.instance().clear()
    validate(cfg)
    return cfg
