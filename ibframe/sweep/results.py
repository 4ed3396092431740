"""A sweep's results: the rows as one typed DataFrame, and that frame as Parquet with the sweep's metadata.

Owns: the columns and their order and types (`COLUMNS`; the swept values as `param_<name>` columns, as the
names were given: `param_fast`, `param_ma-cross.fast`), building the frame from the tasks' rows (one row per
strategy per task, sorted by task), writing it to Parquet with key-value metadata — `ibframe.version`,
`ibframe.sweep` (JSON: config, grid, fills, counts, created) and `ibframe.recordings` (JSON: each recording's
path, SHA-256, size and header line) — and reading that metadata back (`read_metadata`).
Must never: run tasks, or drop a failed task's rows (they carry its error).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .. import __version__
from .sources import RecordingRef

META_VERSION, META_SWEEP, META_RECORDINGS = b"ibframe.version", b"ibframe.sweep", b"ibframe.recordings"

# name -> dtype; the param_* columns come after "fills_mode", the optional order columns last
COLUMNS: dict[str, str] = {
    "task": "Int64", "set_id": "Int64", "strategy": "string", "recording": "string", "fills_mode": "string",
    "params": "string",
    "ok": "boolean", "error_type": "string", "error": "string",
    "pnl": "float64", "realized_pnl": "float64", "unrealized_pnl": "float64", "commission": "float64",
    "orders": "Int64", "fills": "Int64", "shares": "float64", "open_positions": "Int64",
    "marked_to_last_fill": "Int64", "max_drawdown": "float64", "sharpe": "float64", "equity_samples": "Int64",
    "slippage_bps": "float64", "savings": "float64", "notional": "float64", "fills_without_quote": "Int64",
    "order_messages": "Int64", "orders_digest": "string", "frames": "Int64",
    "divergences": "Int64", "first_divergence": "string", "problems": "Int64", "first_problem": "string",
    "damage": "string", "warnings": "Int64", "first_warning": "string",
    "recording_sha256": "string", "recording_server_version": "Int64", "recording_start": "datetime",
    "recording_conn_time": "string",
    "recording_frames": "Int64", "recording_orders": "Int64", "recording_complete": "boolean",
    "startup_s": "float64", "replay_s": "float64", "figures_s": "float64", "worker": "string",
    "traceback": "string",
}
OPTIONAL = ("order_payloads", "order_times")      # keep_orders=True: each task's order messages (bytes, times)


def frame(rows: list[dict], param_names: list[str] | tuple[str, ...], metadata: dict | None = None) -> pd.DataFrame:
    """The rows as a DataFrame with COLUMNS' types; `metadata` goes to `df.attrs['ibframe']`."""
    params = [f"param_{name}" for name in param_names]
    order = list(COLUMNS)
    at = order.index("fills_mode") + 1
    order = order[:at] + params + order[at:] + [c for c in OPTIONAL if any(c in r for r in rows)]
    df = pd.DataFrame(rows, columns=order)
    for name, kind in COLUMNS.items():
        df[name] = _typed(df[name], kind)
    for name in params:
        df[name] = _param_column(df[name])
    if len(df):
        df = df.sort_values("task", kind="stable").reset_index(drop=True)
    df.attrs["ibframe"] = dict(metadata or {})
    return df


def write(df: pd.DataFrame, path: str | Path, metadata: dict, recordings: list[RecordingRef]) -> Path:
    """`df` to Parquet at `path` (its folder made when missing), with the sweep's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = df.copy()
    plain.attrs = {}                                  # the metadata goes in as its own keys, not inside pandas'
    table = pa.Table.from_pandas(plain, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[META_VERSION] = __version__.encode()
    meta[META_SWEEP] = json.dumps(metadata, default=str).encode()
    meta[META_RECORDINGS] = json.dumps(recordings_meta(recordings), default=str).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def recordings_meta(recordings: list[RecordingRef]) -> list[dict]:
    """Each recording's path, SHA-256, size and header line, as the metadata carries them."""
    return [{"path": r.path, "sha256": r.sha256, "size": r.size, "header": r.header} for r in recordings]


def read_metadata(path: str | Path) -> dict:
    """{'ibframe': version, 'sweep': {...}, 'recordings': [...]} from a results file's key-value metadata."""
    import pyarrow.parquet as pq
    meta = pq.read_schema(path).metadata or {}
    return {"ibframe": meta.get(META_VERSION, b"").decode(),
            "sweep": json.loads(meta.get(META_SWEEP, b"{}")),
            "recordings": json.loads(meta.get(META_RECORDINGS, b"[]"))}


def _typed(column: pd.Series, kind: str) -> pd.Series:
    if kind == "datetime":
        return pd.to_datetime(pd.to_numeric(column, errors="coerce"), unit="s", utc=True)
    if kind == "float64":
        return pd.to_numeric(column, errors="coerce").astype("float64")
    if kind == "Int64":
        return pd.to_numeric(column, errors="coerce").astype("Int64")
    if kind == "boolean":
        return column.astype("boolean")
    return column.astype("string")


def _param_column(column: pd.Series) -> pd.Series:
    """One type per swept parameter: booleans, whole numbers, numbers, or text when the values mix."""
    values = [v for v in column if v is not None and not (isinstance(v, float) and pd.isna(v))]
    if values and all(isinstance(v, bool) for v in values):
        return column.astype("boolean")
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return column.astype("Int64")
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return column.astype("float64")
    return column.map(lambda v: None if v is None else str(v)).astype("string")
