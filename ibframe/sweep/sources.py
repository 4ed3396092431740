"""Recordings as a sweep ships them: found by glob on the client, read once, opened once per worker.

Owns: expanding the `--recordings` patterns, reading each matching file once on the client (its bytes,
their SHA-256, the header facts a results row carries), and, on a worker, turning those bytes back into an
`ibframe.record.Recording`, cached per process by digest.

How a recording reaches the workers: the client scatters each file's bytes to every worker once
(`client.scatter(data, broadcast=True)`) and every task gets a reference to them. That works the same on
this machine's LocalCluster and on a cluster whose workers share no disk with the client (`--scheduler`), and
a recording of a few hundred KB costs one copy per worker. The first task on a worker writes the bytes to a
file in the worker's temporary folder (a Recording reads a file) and validates it; later tasks of the same
recording on that worker reuse the opened Recording, so a task starts without a transfer or a validation pass.
A Recording is only read by a replay (each replay reads its events afresh), so sharing it is safe.
Must never: write next to the user's recordings, or ship a recording with every task.
"""
from __future__ import annotations

import glob
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..record import Recording, RecordingError
from ..replay import ReplayError
from ..replay.runner import check_version          # the replay's own "can this ibapi decode it" check

RECORD_HINT = "record one with: python -m ibframe.run CONFIG --record var/session.jsonl.gz"


class SourceError(ValueError):
    """A --recordings pattern that matches nothing, or a file that is not a recording; the text says which."""


@dataclass(slots=True, frozen=True)
class RecordingRef:
    """One recording as the tasks know it: where it was found, its digest, and its header's facts."""
    path: str                           # as found on the client (the row's `recording` column)
    sha256: str
    size: int
    facts: dict = field(default_factory=dict)     # server_version, start, frames, orders, complete, …
    header: dict = field(default_factory=dict)    # the header line as recorded (for the Parquet metadata)

    @property
    def file_name(self) -> str:
        return Path(self.path).name


def find(patterns: str | os.PathLike | list) -> list[Path]:
    """Every file the patterns match (globs, `**` included, or plain paths), sorted, each once."""
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    found: list[Path] = []
    for pattern in patterns:
        text = os.fspath(pattern)
        matches = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else \
            ([text] if Path(text).exists() else [])
        files = [m for m in matches if Path(m).is_file()]
        if not files:
            what = "matches no file" if glob.has_magic(text) else "does not exist"
            if matches:
                what = "matches only folders; give the files in them, e.g. " + str(Path(matches[0]) / "*.jsonl.gz")
            raise SourceError(f"--recordings {text!r} {what}; {RECORD_HINT}")
        found += [Path(m) for m in files]
    first: dict[Path, Path] = {}                  # one file under two names (a glob and a path): once
    for path in found:
        first.setdefault(path.resolve(), path)
    return list(first.values())


def read(path: Path) -> tuple[RecordingRef, bytes]:
    """The file's bytes and its RecordingRef; SourceError when it is not a recording at all."""
    try:
        data = path.read_bytes()
        rec = Recording(path)
        check_version(rec)
    except RecordingError as exc:
        raise SourceError(f"{exc}; --recordings takes files written by python -m ibframe.run --record") from None
    except ReplayError as exc:
        raise SourceError(str(exc)) from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    h = rec.header
    facts = {"server_version": h.server_version, "start": h.wall, "conn_time": h.conn_time, "client_id": h.client_id,
             "ibframe": h.ibframe, "ibapi": h.ibapi, "frames": rec.frames_in, "orders": len(rec.orders),
             "complete": rec.complete, "damage": str(rec.damage) if rec.damage is not None else None}
    ref = RecordingRef(str(path), hashlib.sha256(data).hexdigest(), len(data), facts, dict(h.raw))
    return ref, data


# --- on a worker ------------------------------------------------------------------------------------------------

_cache: dict[str, Recording] = {}
_lock = threading.Lock()
_folder: tempfile.TemporaryDirectory | None = None


def open_recording(ref: RecordingRef, data: bytes | None) -> Recording:
    """The Recording of `ref` in this process: from the cache, from the shipped bytes, or from its path."""
    with _lock:
        rec = _cache.get(ref.sha256)
        if rec is not None:
            return rec
        if data is None:                            # a sequential run on the client: the file itself
            rec = Recording(ref.path)
        else:
            if hashlib.sha256(data).hexdigest() != ref.sha256:
                raise RecordingError(ref.path, None, "the bytes the worker received do not match the client's file "
                                                     "(changed while the sweep started?)")
            rec = Recording(_materialize(ref, data))
        _cache[ref.sha256] = rec
        return rec


def _materialize(ref: RecordingRef, data: bytes) -> Path:
    global _folder
    if _folder is None:
        _folder = tempfile.TemporaryDirectory(prefix="ibframe-sweep-")
    target = Path(_folder.name) / f"{ref.sha256[:16]}-{ref.file_name}"   # keeps .gz: the reader goes by the name
    if not target.exists():
        target.write_bytes(data)
    return target


def clear_cache() -> None:
    """Forget the opened recordings (tests; a worker keeps them for its life)."""
    with _lock:
        _cache.clear()
