"""``status``: what waits in the spool, per run, and why it has not reached the table.

Example::

    >>> [(r.run_id, r.pending_steps, r.writer) for r in status(spool="/tmp/spool")]  # doctest: +SKIP
    [('20261125-033511-a1b2c3', 4, 'gone')]
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from pipetrace import spool as sp
from pipetrace.errors import PipetraceError, SpoolError
from pipetrace.locations import normalize_table, resolve_spool

__all__ = ["RunStatus", "status"]


@dataclass(frozen=True)
class RunStatus:
    """One run of the spool: its pending work, its writer, and its commit failures."""

    run_id: str
    table: str | None
    writer: sp.WriterState
    sealed_segments: int
    open_segments: int
    pending_steps: int
    quarantined: int
    failed_attempts: int
    last_error: str | None
    last_error_at: str | None
    record_pending: bool = False  # the run's row in pipeline_runs is not committed yet


def _run_status(run_dir: Path) -> RunStatus:
    table = None
    with contextlib.suppress(SpoolError):
        table = sp.read_manifest(run_dir).table
    sealed = sp.sealed_segments(run_dir)
    opened = sp.open_segments(run_dir)
    held = run_dir / sp.QUARANTINE
    quarantined = len(list(held.glob("seg-*.jsonl"))) if held.is_dir() else 0
    error = sp.read_error(run_dir) or {}
    try:
        writer = sp.writer_state(run_dir)
    except SpoolError:
        writer = "absent"
    return RunStatus(
        run_id=run_dir.name,
        table=table,
        writer=writer,
        sealed_segments=len(sealed),
        open_segments=len(opened),
        pending_steps=sum(sp.pending_steps(s) for s in [*sealed, *opened]),
        quarantined=quarantined,
        failed_attempts=int(error.get("attempts", 0)),
        last_error=error.get("error"),
        last_error_at=error.get("at"),
        record_pending=any((run_dir / name).exists() for name in sp.RECORD_FILES),
    )


def status(*, spool: str | Path | None = None, table: str | None = None) -> list[RunStatus]:
    """The spool's runs (only those meant for ``table``, or naming none, when it is given).

    Example::

        >>> status(spool="/nonexistent/spool")
        []
    """
    wanted = normalize_table(table) if table is not None else None
    runs = []
    for run_dir in sp.list_runs(resolve_spool(spool)):
        state = _run_status(run_dir)
        if wanted is not None and state.table is not None:
            try:
                if normalize_table(state.table) != wanted:
                    continue
            except PipetraceError:
                continue
        runs.append(state)
    return runs
