"""``recover``: after a crash, seal the dead runs' open segments and commit everything pending.

A run killed with ``kill -9`` (or a machine that lost power) leaves its last segment ``.open``
and maybe segments that were committed but not yet deleted. Recovery is the normal exactly-once
ingest restricted to runs whose writer is gone: open segments lose only their torn tail, and
segments the table already has (by Delta transaction id) are only deleted.

Example::

    >>> result = recover(spool="/tmp/spool", table="/tmp/pipeline_steps")  # doctest: +SKIP
    >>> result.steps, result.runs  # doctest: +SKIP
    (7, ['20261125-033511-a1b2c3'])
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pipetrace import run_record
from pipetrace import spool as sp
from pipetrace.errors import PipetraceError, SpoolError
from pipetrace.ingest import IngestResult, ingest, refuse_catalog_name
from pipetrace.locations import is_table_name, normalize_table, resolve_spool, resolve_table

__all__ = ["dead_runs", "recover"]


def dead_runs(spool: Path, table: str, *, include_unassigned: bool) -> list[str]:
    """Ids of the spool's runs for ``table`` whose writer is gone (or never took its lock).

    ``include_unassigned`` also returns runs whose manifest names no table.

    Example::

        >>> dead_runs(Path("/nonexistent"), "/tmp/t", include_unassigned=True)
        []
    """
    found = []
    for run_dir in sp.list_runs(spool):
        with contextlib.suppress(SpoolError):
            if sp.writer_state(run_dir) == "alive":
                continue
            if not (run_dir / sp.MANIFEST).exists():
                # only the Python side's record: its driver never spooled (killed before it)
                if run_record.record_table(run_dir) == table and run_record.ready(run_dir):
                    found.append(run_dir.name)
                continue
            manifest = sp.read_manifest(run_dir)
            if manifest.table is None:
                if include_unassigned:
                    found.append(run_dir.name)
                continue
            if _same_table(manifest.table, table):
                found.append(run_dir.name)
    return found


def _same_table(named: str, table: str) -> bool:
    """Whether a manifest's table is ``table``: catalog names as written, paths normalized."""
    if is_table_name(named) or is_table_name(table):
        return named.strip() == table.strip()
    try:
        return normalize_table(named) == table
    except PipetraceError:
        return False


def recover(
    *,
    spool: str | Path | None = None,
    table: str | None = None,
    include_unassigned: bool = True,
) -> IngestResult:
    """Commit every dead run of ``table`` in ``spool`` exactly once; return what was done.

    Runs whose writer is still alive are left to their writer; runs meant for another table
    are left alone. ``include_unassigned=False`` also leaves runs that name no table (attach()
    uses it, so that it only takes over its own table's runs).

    Example::

        >>> recover(table="/tmp/pipeline_steps").steps  # doctest: +SKIP
        12
    """
    refuse_catalog_name(table)
    table_uri = resolve_table(table)
    spool_dir = resolve_spool(spool)
    runs = dead_runs(spool_dir, table_uri, include_unassigned=include_unassigned)
    if not runs:
        return IngestResult(table=table_uri)
    return ingest(spool=spool_dir, table=table_uri, run_ids=runs)
