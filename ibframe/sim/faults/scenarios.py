"""Fault scenarios: the YAML files `python -m ibframe.sim --faults scenario.yaml` runs.

Owns: the scenario format (a list of `{at: "30s", fault: name, ...params}`, `at` in simulated time
since the gateway started), which faults a scenario may name and how each parameter is read
(`SCRIPTABLE`; the required ones come from the control API's signatures), durations ("1m30s",
"250ms"), and every problem in a file as a `ScenarioError` naming the file and line.

Must never: inject anything itself (the control API in `control.py` runs the parsed script on
the gateway's market steps) or read the clock.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from .control import Faults, _kind



# --- scenario files ---------------------------------------------------------------------------------

class ScenarioError(ValueError):
    """A fault scenario that cannot be run; the message names the file and the line."""


@dataclass(slots=True)
class ScriptedFault:
    at: float              # simulated seconds since the gateway started
    name: str
    params: dict = field(default_factory=dict)
    line: int = 0


_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|sec|min|s|m|h)")


def parse_duration(value: Any) -> float:
    """Seconds from 30, 1.5, "30s", "500ms", "2m", "1m30s" or "1h"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _PART.finditer(text):
                if text[pos:m.start()].strip():
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos == 0 or text[pos:].strip():
                raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 500ms, 2m, 1m30s, 1h)") from None
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"{value!r} is not a duration (it must be zero or more)")
    return seconds


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{v!r} is not a whole number")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{v!r} is not true or false")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, (str, int, float)) or isinstance(v, bool):
        raise ValueError(f"{v!r} is not text")
    return str(v)


# fault name -> parameter -> converter; required parameters come from the method's signature
SCRIPTABLE: dict[str, dict[str, Callable[[Any], Any]]] = {
    "drop_client": {"client_id": _int},
    "connectivity_lost": {"seconds": parse_duration, "data_lost": _bool},
    "connectivity_restored": {"data_lost": _bool},
    "reject_next_orders": {"n": _int, "reason": _text},
    "delay_messages": {"seconds": parse_duration, "client_id": _int, "duration": parse_duration},
    "pacing_violation": {"client_id": _int, "kind": _kind},
    "restart": {"keep_state": _bool, "pause": parse_duration},
}


def _required(name: str) -> list[str]:
    sig = inspect.signature(getattr(Faults, name))
    return [p.name for p in sig.parameters.values()
            if p.name != "self" and p.default is inspect.Parameter.empty]


def load_scenario(path: str | Path) -> list[ScriptedFault]:
    """Read and check a scenario file; every problem is a ScenarioError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read the fault scenario {path}: {exc.strerror}") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, name: str = "<scenario>") -> list[ScriptedFault]:
    def fail(line: int, message: str) -> ScenarioError:
        return ScenarioError(f"{name}, line {line}: {message}")

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and ("<stream end>" in problem or "end of stream" in problem):
            mark, problem = context_mark, f"{problem} {context} that is never closed"   # the opening line helps
        line = mark.line + 1 if mark is not None else 1
        raise fail(line, f"not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if root is None:
        raise ScenarioError(f"{name}: the fault scenario is empty; write a list of "
                            f"{{at: \"30s\", fault: <name>, ...}} items")
    if isinstance(root, yaml.MappingNode):     # also accept {faults: [...]}
        items = [v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "faults"]
        if not items:
            raise fail(root.start_mark.line + 1, "a fault scenario is a list of faults (or a mapping with "
                                                 "a 'faults:' list)")
        root = items[0]
    if not isinstance(root, yaml.SequenceNode):
        raise fail(root.start_mark.line + 1, "a fault scenario is a list of {at: ..., fault: ...} items")
    out = []
    for item in root.value:
        line = item.start_mark.line + 1
        if not isinstance(item, yaml.MappingNode):
            raise fail(line, "each fault is a mapping like {at: \"30s\", fault: drop_client, client_id: 7}")
        values: dict[str, tuple[Any, int]] = {}
        for key_node, value_node in item.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise fail(key_line, "fault keys must be plain names")
            try:
                value = loader.construct_object(value_node, deep=True)
            except yaml.YAMLError as exc:
                raise fail(key_line, f"cannot read the value of {key_node.value!r}: {exc}") from None
            values[key_node.value] = (value, key_line)
        if "fault" not in values:
            raise fail(line, f"missing 'fault:' (one of {', '.join(SCRIPTABLE)})")
        fault, fault_line = values.pop("fault")
        if fault not in SCRIPTABLE:
            raise fail(fault_line, f"unknown fault {fault!r} (known: {', '.join(SCRIPTABLE)})")
        if "at" not in values:
            raise fail(line, f"{fault}: missing 'at:' (simulated time since start, e.g. at: \"30s\")")
        at_value, at_line = values.pop("at")
        try:
            at = parse_duration(at_value)
        except ValueError as exc:
            raise fail(at_line, f"at: {exc}") from None
        spec = SCRIPTABLE[fault]
        params = {}
        for key, (value, key_line) in values.items():
            if key not in spec:
                raise fail(key_line, f"{fault} has no parameter {key!r} "
                                     f"(it takes: {', '.join(spec) or 'nothing'})")
            if value is None:
                params[key] = None
                continue
            try:
                params[key] = spec[key](value)
            except ValueError as exc:
                raise fail(key_line, f"{fault} {key}: {exc}") from None
        missing = [p for p in _required(fault) if p not in params]
        if missing:
            raise fail(line, f"{fault} needs {', '.join(missing)}")
        out.append(ScriptedFault(at, fault, params, line))
    out.sort(key=lambda f: f.at)       # stable: faults at the same time keep the file's order
    return out
