"""A sweep's plan: the config, the grid and the recordings turned into tasks, checked before anything runs.

Owns: loading the config once, matching each grid parameter to a strategy and one of its parameters
(`fast` when the config has one strategy, `STRATEGY.fast` when it has several), the recordings read once
(ibframe.sweep.sources), the list of `TaskSpec`s (every parameter set × every recording, parameter sets
outermost) and the sweep's metadata. A name that matches no parameter is an error here, before any task runs;
a value a strategy's `Params` refuses is not (the task that gets it fails with the strategy's message).
Must never: run a replay, or start or reach a cluster.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import RunConfig, load_config
from ..params import params_model
from ..run import RunError, load_strategy_class
from .grid import Grid, ParamError, make_grid
from .sources import RecordingRef, find, read

FILLS = ("simulated", "recorded")
DEFAULT_SAMPLE_EVERY = 5.0            # seconds of recorded time between equity samples (figures.py)


@dataclass(slots=True, frozen=True)
class TaskSpec:
    """One task: one parameter set replayed over one recording. Small: the config and the recording's bytes
    travel once per worker, not with each task."""
    task: int                               # 0.. in plan order
    set_id: int                             # the parameter set's index in the grid
    point: dict[str, Any]                   # the grid's names as given -> this set's values
    overrides: dict[int, dict[str, Any]]    # strategy index -> {param: value} to put in its params
    recording: RecordingRef
    fills: str = "simulated"
    sample_every: float = DEFAULT_SAMPLE_EVERY
    keep_orders: bool = False               # also return the order messages' bytes (tests, audits)


@dataclass(slots=True)
class Plan:
    cfg: RunConfig
    grid: Grid
    targets: dict[str, tuple[int, str]]     # grid name -> (strategy index, parameter)
    recordings: list[RecordingRef]
    data: dict[str, bytes]                  # sha256 -> the recording's bytes
    tasks: list[TaskSpec]
    fills: str
    sample_every: float
    paths: list[str] = field(default_factory=list)   # folders the strategy modules were imported from
    modules: list[str] = field(default_factory=list)  # the strategy modules (workers import them once)

    @property
    def strategy_names(self) -> list[str]:
        return [s.name for s in self.cfg.strategies]

    def metadata(self) -> dict:
        """What the Parquet file's key-value metadata says about the sweep (results.py writes it)."""
        return {"ibframe": __version__, "config": self.cfg.source, "strategies": self.strategy_names,
                "grid": self.grid.describe(), "parameter_sets": len(self.grid), "recordings": len(self.recordings),
                "tasks": len(self.tasks), "fills": self.fills, "sample_every_s": self.sample_every,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "python": sys.version.split()[0]}


def make_plan(config: str | Path | RunConfig, params, recordings, *, fills: str = "simulated",
              sample_every: float = DEFAULT_SAMPLE_EVERY, keep_orders: bool = False) -> Plan:
    """Check everything a sweep needs and list its tasks; ConfigError, ParamError or SourceError otherwise."""
    if fills not in FILLS:
        raise ParamError(f"fills must be 'simulated' or 'recorded', got {fills!r}")
    if not (isinstance(sample_every, (int, float)) and sample_every > 0):
        raise ParamError(f"sample_every must be a positive number of seconds, got {sample_every!r}")
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    grid = make_grid(params)
    classes = _strategy_classes(cfg)
    targets = {name: _target(cfg, classes, name) for name in grid.names}
    refs, data = [], {}
    for path in find(recordings):
        ref, raw = read(path)
        if ref.sha256 in data:
            continue                                # the same recording under two names: replayed once
        refs.append(ref)
        data[ref.sha256] = raw
    tasks = []
    for set_id, point in enumerate(grid.points()):
        overrides: dict[int, dict[str, Any]] = {}
        for name, value in point.items():
            index, param = targets[name]
            overrides.setdefault(index, {})[param] = value
        for ref in refs:
            tasks.append(TaskSpec(len(tasks), set_id, point, overrides, ref, fills, float(sample_every), keep_orders))
    modules = list(dict.fromkeys(c.__module__ for c in classes))
    return Plan(cfg, grid, targets, refs, data, tasks, fills, float(sample_every), _module_roots(modules), modules)


def _strategy_classes(cfg: RunConfig) -> list[type]:
    try:
        return [load_strategy_class(s.class_path) for s in cfg.strategies]
    except RunError as exc:
        raise ParamError(f"{cfg.source}: {exc}") from None


def _target(cfg: RunConfig, classes: list[type], name: str) -> tuple[int, str]:
    """(strategy index, parameter name) of a grid name; ParamError naming what exists otherwise."""
    names = [s.name for s in cfg.strategies]
    strategy, dot, param = name.rpartition(".")
    if dot and strategy in names:
        index = names.index(strategy)
    elif len(names) == 1 and not dot:
        index, param = 0, name
    elif len(names) == 1:
        raise ParamError(f"parameter {name}: {cfg.source} has one strategy, {names[0]}; write {param} or "
                         f"{names[0]}.{param}")
    elif not dot:
        raise ParamError(f"parameter {name}: {cfg.source} has {len(names)} strategies ({', '.join(names)}); "
                         f"say whose it is, e.g. {names[0]}.{name}")
    else:
        raise ParamError(f"parameter {name}: no strategy named {strategy!r} in {cfg.source} (its strategies: "
                         f"{', '.join(names)})")
    known = _known_params(cfg, classes, index)
    if param not in known:
        scfg = cfg.strategies[index]
        listed = ", ".join(sorted(known)) or "none"
        hint = "" if params_model(classes[index]) is not None else \
            " (its class declares no Params model: only the params: keys in the YAML can be swept; add this one there)"
        raise ParamError(f"parameter {name}: strategy {scfg.name} ({scfg.class_path}) has no parameter "
                         f"{param!r}; its parameters: {listed}{hint}")
    return index, param


def _known_params(cfg: RunConfig, classes: list[type], index: int) -> set[str]:
    model = params_model(classes[index])
    if model is not None:
        return {field_name for field_name in model.model_fields}
    return set(cfg.strategies[index].params or {})


def _module_roots(modules: list[str]) -> list[str]:
    """The sys.path folder each strategy module was imported from (workers put them on their path)."""
    roots = []
    for name in modules:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if not location:
            continue
        root = Path(location).resolve().parent
        for _ in range(name.count(".")):
            root = root.parent
        if os.fspath(root) not in roots:
            roots.append(os.fspath(root))
    return roots
