"""Where a reused run id left off: its last seq and row_hash, in the table or the spool.

A run id given again (``attach(run_id=...)``, ``pipetrace run --run-id``) continues its run:
the next step is numbered after the last one already recorded and chained to its hash, so a
run's seq stays unique and ``pipetrace verify`` holds. (Within one driver JVM, a new
SparkSession continues the run by itself.)

Example::

    >>> resume_point("r1", table="/nonexistent/t", spool=Path("/nonexistent/spool"))
    (0, None)
"""

from __future__ import annotations

from pathlib import Path

from pipetrace import spool as sp
from pipetrace.errors import PipetraceError
from pipetrace.locations import is_local, is_table_name

__all__ = ["resume_point"]


def resume_point(run_id: str, *, table: str, spool: Path) -> tuple[int, str | None]:
    """The highest seq recorded for ``run_id`` (table or spool) and its row_hash; (0, None)."""
    best: tuple[int, str | None] = (0, None)
    if not is_table_name(table) and (not is_local(table) or Path(table, "_delta_log").is_dir()):
        from pipetrace.query import _literal, sql

        try:
            found = sql("SELECT seq, row_hash FROM pipeline_steps WHERE run_id = "
                        f"{_literal(run_id)} ORDER BY seq DESC LIMIT 1", table=table).to_pylist()
        except PipetraceError:
            found = []
        if found:
            best = (int(found[0]["seq"]), found[0]["row_hash"])
    run_dir = spool / run_id
    for segment in [*sp.sealed_segments(run_dir), *sp.open_segments(run_dir)]:
        try:
            rows = sp.read_segment(segment.path)
        except PipetraceError:
            continue  # unreadable: ingest quarantines it and says so
        for row in rows:
            seq = row.get("seq")
            if isinstance(seq, int) and seq > best[0]:
                best = (seq, row.get("row_hash"))
    return best
