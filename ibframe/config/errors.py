"""Config errors a user can act on: `file:line: key: message`, from hand checks and from pydantic alike.

Owns: `ConfigError`, the line map of a YAML document (`Lines`), and turning a pydantic `ValidationError`
into (key path, message) pairs whose messages say what was wrong and what to write instead. The hint for a
field is its `Field(description=...)`, a noun phrase read as "must be <description>".
Must never: read files or know any particular section's keys.
"""
from __future__ import annotations

import types
import typing
from typing import Any, Iterator

import yaml
from pydantic import BaseModel, ValidationError


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)      # libyaml when installed: fast, and refuses deep nesting


class ConfigError(ValueError):
    """One line a user can act on: where (file:line), which key, what is wrong and what is allowed."""

    def __init__(self, source: str, key: str, line: int | None, message: str):
        self.source, self.key, self.line, self.message = source, key, line, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class Lines:
    """Line numbers of every key path in the YAML document, for error messages; keys given twice."""

    MAX_NODES = 200_000                        # aliases can make a small file a huge graph; stop counting there
    MAX_DEPTH = 64

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        self.duplicates: list[tuple[tuple, int]] = []      # (key path, line of its first occurrence)
        try:
            node = yaml.compose(text, Loader=LOADER)
        except (yaml.YAMLError, RecursionError):
            node = None
        if node is not None:
            self._walk(node)

    def _walk(self, root) -> None:
        todo, walked = [(root, ())], set()
        while todo and len(walked) < self.MAX_NODES:
            node, path = todo.pop()
            if id(node) in walked or len(path) > self.MAX_DEPTH:    # an alias: its lines are known already
                continue
            walked.add(id(node))
            self.lines.setdefault(path, node.start_mark.line + 1)
            if isinstance(node, yaml.MappingNode):
                keys: dict = {}
                for key_node, value_node in node.value:
                    key_path = path + (_key_of(key_node),)
                    line = key_node.start_mark.line + 1
                    if key_path[-1] in keys and key_node.tag != "tag:yaml.org,2002:merge":
                        self.duplicates.append((key_path, keys[key_path[-1]]))
                    keys.setdefault(key_path[-1], line)
                    self.lines[key_path] = line
                    todo.append((value_node, key_path))
            elif isinstance(node, yaml.SequenceNode):
                todo.extend((item, path + (i,)) for i, item in enumerate(node.value))
        self.duplicates.sort(key=lambda d: self.lines.get(d[0], 0))

    def line(self, path: tuple) -> int | None:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())

    def under(self, prefix: tuple) -> dict[tuple, int]:
        """The lines of every key path below `prefix`, relative to it (prefix itself is ())."""
        n = len(prefix)
        return {p[n:]: line for p, line in self.lines.items() if p[:n] == prefix}


def _key_of(node) -> str:
    """The text a mapping key reads as (the YAML loader's key is compared with str() of it)."""
    if isinstance(node, yaml.ScalarNode) and not node.tag.endswith(":str"):
        try:
            return str(yaml.load(yaml.serialize(node), Loader=LOADER))
        except Exception:                      # an odd tag: the raw text is as good a name
            return str(node.value)
    return str(node.value)


def dotted(path: tuple) -> str:
    return ".".join(str(k) for k in path)


# --- pydantic errors -> (key path, message) -------------------------------------------------------------

def problems(exc: ValidationError, model: type[BaseModel]) -> Iterator[tuple[tuple, str]]:
    """Each error of `exc` (raised validating `model`) as (key path, one-line message)."""
    for err in exc.errors(include_url=False):
        loc = tuple(step for step in err["loc"] if step != "[key]")
        yield loc, describe(err, model, loc)


def first_problem(exc: ValidationError, model: type[BaseModel]) -> tuple[tuple, str]:
    return next(problems(exc, model))


def describe(err: dict, model: type[BaseModel], loc: tuple) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        allowed = keys_of(model_at(model, loc[:-1]))
        return f"unknown key; allowed: {', '.join(allowed)}" if allowed else "unknown key"
    if kind in ("value_error", "assertion_error"):
        cause = (err.get("ctx") or {}).get("error")
        return str(cause) if cause is not None else err["msg"]
    hint = hint_at(model, loc)
    if kind == "missing":
        return f"missing; write {hint}" if hint else "missing"
    if hint:
        return f"must be {hint}, got {_shown(value)}"
    return f"{err['msg'][:1].lower()}{err['msg'][1:]}, got {_shown(value)}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def keys_of(model) -> list[str]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return sorted(info.alias or name for name, info in model.model_fields.items() if not info.exclude)


def hint_at(model: type[BaseModel], loc: tuple) -> str | None:
    """The description of the field at `loc` (the nearest described field on the way there)."""
    hint, current = None, model
    for step in loc:
        current, info = _step(current, step)
        if info is not None and info.description:
            hint = info.description
        elif info is not None:
            hint = None
        if current is None:
            break
    return hint


def model_at(model: type[BaseModel], loc: tuple):
    current = model
    for step in loc:
        current, _ = _step(current, step)
        if current is None:
            return None
    return _unwrap(current)


def _step(current, step):
    """Follow one element of an error location: (the type found there, the FieldInfo if it was a field)."""
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        for name, info in current.model_fields.items():
            if step in (name, info.alias):
                return info.annotation, info
        return None, None
    origin = typing.get_origin(current)
    args = typing.get_args(current)
    if origin in (list, tuple, set, frozenset) and isinstance(step, int) and args:
        return args[0], None
    if origin is dict and len(args) == 2:
        return args[1], None
    return None, None


def _unwrap(tp):
    """X from Annotated[X, ...] and from X | None (the first non-None member of a union)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = (models or members or [None])[0]
        else:
            return tp
