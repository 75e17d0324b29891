"""One run's rows as the report and the diff read them: its steps from ``pipeline_steps`` and
its record (who, where, exit status, the script's hash) from ``pipeline_runs`` beside it, both
read with DataFusion (no Spark). A run without a record (older table, or not over yet) has its
steps alone.

Example::

    >>> run = load_run("20261125-035123-a08d0d", table="/tmp/pipeline_steps")  # doctest: +SKIP
    >>> run.facts()["status"]                                                   # doctest: +SKIP
    'SUCCEEDED'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipetrace.errors import QueryError, TableError
from pipetrace.locations import resolve_table
from pipetrace.query import _literal, latest_run_id, sql

__all__ = ["RunData", "load_run", "rows_from_pandas"]


@dataclass
class RunData:
    """One run's rows: its steps ordered by seq, and its ``pipeline_runs`` records (one per
    session that ran under this run id; empty when the table has none)."""

    run_id: str
    table: str
    steps: list[dict[str, Any]]
    records: list[dict[str, Any]] = field(default_factory=list)

    def facts(self) -> dict[str, Any]:
        """The run's header: status, who, where, when, how long, code fingerprint, versions.
        Empty values are left out."""
        rec = sorted(self.records, key=lambda r: str(r.get("started_at")))
        first, last = (rec[0], rec[-1]) if rec else ({}, {})
        steps = self.steps
        ctx: dict[str, Any] = {}
        for row in steps:
            ctx.update({k: v for k, v in dict(row.get("context") or {}).items() if v})
        started = first.get("started_at") or min((s.get("started_at") or s.get("captured_at")
                                                  for s in steps), default=None)
        ended = last.get("ended_at") if rec else max((s.get("captured_at") for s in steps),
                                                    default=None)
        failed = sum(1 for s in steps if s.get("status") == "FAILED")
        captured = sum(r.get("steps") or 0 for r in rec) if rec and all(
            r.get("steps") is not None for r in rec) else None
        in_table = f"{len(steps)} ({failed} failed)"
        if captured is not None and captured != len(steps):
            in_table += f"; the run captured {captured}: the table does not hold them all"
        status = last.get("status") or "UNKNOWN (no pipeline_runs record)"
        where = ", ".join(f"{k} {ctx[k]}" for k in ("workspace_url", "cluster_name", "cluster_id",
                                                      "notebook_path", "job_id", "job_run_id",
                                                      "task_key") if ctx.get(k))
        conf = dict(last.get("spark_conf") or {})
        return {k: v for k, v in {
            "status": status,
            "exit code": last.get("exit_code"),
            "end reason": last.get("end_reason"),
            "mode": last.get("mode"),
            "user": last.get("user") or next((s.get("user") for s in steps if s.get("user")), None),
            "where": where or None,
            "host": last.get("host"),
            "script": last.get("script_path"),
            "script sha256": last.get("script_sha256"),
            "arguments": " ".join(last.get("argv") or []) or None,
            "notebook cells": (f"{len(last['cells'])} executed (each cell's SHA-256 and text "
                               "in pipeline_runs.cells)") if last.get("cells") else None,
            "started": started,
            "ended": ended,
            "took": _took(started, ended),
            "steps": in_table,
            "app": " · ".join(str(v) for v in (last.get("app_name") or _first(steps, "app_name"),
                                               last.get("app_id") or _first(steps, "app_id")) if v),
            "versions": " · ".join(f"{n} {v}" for n, v in (
                ("Spark", last.get("spark_version") or _first(steps, "spark_version")),
                ("Python", last.get("python_version")), ("Java", last.get("java_version")),
                ("pipetrace", last.get("pipetrace_version") or _first(steps, "pipetrace_version")))
                if v),
            "settings": ", ".join(f"{k}={v}" for k, v in sorted(conf.items())) or None,
            "tags": ", ".join(f"{k}={v}" for k, v in sorted(dict(_first(steps, "tags") or {}).items()))
            or None,
        }.items() if v not in (None, "")}


def _first(rows: list[dict[str, Any]], key: str) -> Any:
    return next((r.get(key) for r in rows if r.get(key)), None)


def _took(start: Any, end: Any) -> str | None:
    try:
        seconds = (end - start).total_seconds()
    except (TypeError, AttributeError):
        return None
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def load_run(run_id: str | None = None, *, table: str | None = None) -> RunData:
    """Read run ``run_id`` (default: the latest) from the table; :class:`TableError` when the
    table has no step of it.

    Example::

        >>> load_run("r1", table="/tmp/pipeline_steps").steps[0]["seq"]  # doctest: +SKIP
        1
    """
    chosen = run_id or latest_run_id(table)
    where = resolve_table(table)
    if chosen is None:
        raise TableError(f"no runs in {where} yet: run `pipetrace run script.py` first")
    rows = sql(f"SELECT * FROM pipeline_steps WHERE run_id = {_literal(chosen)} ORDER BY seq",
               table=table).to_pylist()
    if not rows:
        raise TableError(f"no steps for run {chosen!r} in {where}: list the runs with "
                         "pipetrace sql 'SELECT DISTINCT run_id FROM pipeline_steps'")
    try:
        records = sql(f"SELECT * FROM pipeline_runs WHERE run_id = {_literal(chosen)}",
                      table=table).to_pylist()
    except (TableError, QueryError):  # a table from before pipeline_runs existed
        records = []
    return RunData(run_id=chosen, table=where, steps=rows, records=records)


def _plain(value: Any) -> Any:
    """pandas/numpy values (arrays, NaN, numpy scalars) as the plain values Arrow gives."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if value is not None and type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def rows_from_pandas(frame: Any) -> list[dict[str, Any]]:
    """Step rows from a pandas DataFrame of the table (``trace.steps()`` on Spark's writer)."""
    return [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]
