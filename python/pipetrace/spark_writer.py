"""The writer of a capture whose steps Spark's own writer commits (``writer="spark"``).

The JVM's ``SparkSink`` thread commits sealed spool segments with Spark's writer (Delta by
default) into a catalog table or a path; this writer only asks it to commit now on
:meth:`~pipetrace.spark.Handle.flush` and reads the table back through Spark. With
``writer="spool"`` nothing commits: the steps wait in the spool for ``pipetrace ingest``.

Example::

    >>> trace = attach(spark, table="main.audit.pipeline_steps")  # doctest: +SKIP
    >>> trace.writer, trace.format  # doctest: +SKIP
    ('spark', 'delta')
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from pipetrace import run_record
from pipetrace import spool as sp
from pipetrace.errors import PipetraceError, SpoolError, TableError
from pipetrace.ingest import IngestResult
from pipetrace.locations import is_table_name, resolve_spool, resolve_table
from pipetrace.recover import dead_runs

__all__ = ["SparkWriter", "recover_with_spark"]

log = logging.getLogger("pipetrace")


def recover_with_spark(
    spark: Any,
    *,
    table: str | None = None,
    spool: str | Path | None = None,
    format: str = "delta",  # noqa: A002 - the setting's name (spark.pipetrace.format)
    include_unassigned: bool = False,
) -> IngestResult:
    """Commit the spool's dead runs of ``table`` with Spark's writer, exactly once.

    What ``pipetrace recover`` does with delta-rs, for tables only Spark can write: a catalog
    table (``main.audit.pipeline_steps``) or a path Spark's writer owns. Runs whose writer
    is alive are left to it; open segments lose only their torn tail; segments the table
    already has (Delta transaction id ``pipetrace/<run_id>``) are skipped by Delta. The
    writes go through a session of pipetrace's own: never steps. Raises :class:`TableError`
    when the table cannot be written (the steps stay in the spool).

    Example::

        >>> recover_with_spark(spark, table="main.audit.pipeline_steps").steps  # doctest: +SKIP
        12
    """
    from pipetrace._jvm import JvmBridge

    target = resolve_table(table, allow_names=True)
    spool_dir = resolve_spool(spool)
    result = IngestResult(table=target)
    runs = dead_runs(spool_dir, target, include_unassigned=include_unassigned)
    if not runs:
        return result
    bridge = JvmBridge(spark)
    for run_id in runs:
        run_dir = spool_dir / run_id
        with sp.commit_lock(run_dir):
            if not (run_dir / sp.MANIFEST).exists():
                # Only the Python side's record (its driver never spooled), or another
                # committer finished and removed the run while we waited.
                if _commit_record(bridge, run_dir, target, format):
                    result.records += 1
                    shutil.rmtree(run_dir, ignore_errors=True)
                continue
            sp.recover_open_segments(run_dir)
            segments = len(sp.sealed_segments(run_dir))
            stats = bridge.recover_run(str(run_dir), target, format)
            if stats.get("sink_last_error"):
                message = f"committing run {run_id} to {target} failed: {stats['sink_last_error']}"
                sp.record_error(run_dir, message)
                raise TableError(message)
            sp.clear_error(run_dir)
            if _commit_record(bridge, run_dir, target, format):
                result.records += 1
            result.steps += int(stats.get("sink_committed_steps", 0))
            result.segments += segments - int(stats.get("sink_quarantined_segments", 0))
            result.runs.append(run_id)
            if sp.remove_run_if_done(run_dir):
                result.removed_runs.append(run_id)
    return result


def _commit_record(bridge: Any, run_dir: Path, table: str, fmt: str) -> bool:
    """Commit the run's own row (pipeline_runs, beside ``table``) with Spark's writer once the
    run is over; True when it is in the table. The caller holds the run's commit lock.
    Raises :class:`TableError` when it cannot be written (the record stays in the spool)."""
    def write(row: dict[str, Any], version: int) -> None:
        try:
            bridge.commit_record(table, fmt, json.dumps(row), version)
        except PipetraceError as exc:
            message = f"committing the record of run {run_dir.name} beside {table} failed: {exc}"
            sp.record_error(run_dir, message)
            raise TableError(message) from exc

    return run_record.commit_when_over(run_dir, write)


class SparkWriter:
    """The handle's writer for ``writer="spark"`` or ``writer="spool"``: the JVM commits."""

    polls = False  # the JVM's writer thread commits on its own; nothing to poll from Python

    def __init__(self, bridge: Any, info: dict[str, Any], table: str, *, spark: Any) -> None:
        self.name: str = str(info.get("writer", "spark"))
        self.format: str = str(info.get("format") or "delta")
        self._bridge = bridge
        self._run_id: str = info["run_id"]
        self._spool = Path(info["spool"])
        self._table = table
        self._spark = spark
        self._committed = 0
        self._reader: Any = None  # pipetrace's own session for steps(), made on first use
        self.failures = 0  # the JVM counts its writer's failures (status: sink_failures)
        self.last_error: str | None = None

    def describe(self) -> str:
        return f" writer={self.name!r} format={self.format!r}"

    def prepare(self) -> None:
        """Runs of this table left by a crashed process (kill -9, lost machine): commit them
        with Spark's writer, as the delta-rs writer does with delta-rs."""
        if self.name != "spark":
            return
        try:
            recover_with_spark(self._spark, table=self._table, spool=self._spool,
                               format=self.format)
        except Exception as exc:  # noqa: BLE001 - our own run still captures; status shows it
            log.warning("pipetrace: could not recover earlier runs of %s in %s (%s); run "
                        "pipetrace.spark_writer.recover_with_spark(spark, table=%r)",
                        self._table, self._spool, exc, self._table)

    def commit(self, *, if_sealed: bool, detached: bool) -> IngestResult:
        """Ask the JVM to seal and commit the run now; the steps it committed since last time.

        Raises :class:`TableError` with the JVM writer's reason when the commit failed (the
        steps stay in the spool; ``pipetrace status`` shows the reason too).
        """
        if self.name != "spark" or detached:
            return IngestResult(table=self._table)
        stats = self._bridge.commit(self._run_id)
        total = int(stats.get("sink_committed_steps", 0))
        committed, self._committed = total - self._committed, total
        self.failures = int(stats.get("sink_failures", 0))
        self.last_error = stats.get("sink_last_error")
        run_dir = self._spool / self._run_id
        with contextlib.suppress(SpoolError, OSError):
            if self.last_error:
                sp.record_error(run_dir, str(self.last_error))
            else:
                sp.clear_error(run_dir)
        if self.last_error:
            raise TableError(f"Spark's writer could not commit run {self._run_id} to "
                             f"{self._table}: {self.last_error}")
        return IngestResult(table=self._table, steps=committed, runs=[self._run_id])

    def committed_at_detach(self, committed: int) -> int:
        """The JVM commits the last steps itself when it detaches: count those too. The run
        is over: its own row (pipeline_runs) is committed now."""
        done = int(self._bridge.status(self._run_id).get("sink_committed_steps", self._committed))
        if self.name == "spark":
            run_dir = self._spool / self._run_id
            try:
                with sp.commit_lock(run_dir):
                    _commit_record(self._bridge, run_dir, self._table, self.format)
                sp.remove_run_if_done(run_dir)
            except (PipetraceError, OSError) as exc:
                log.warning("pipetrace: the record of run %s stays in the spool %s (%s); "
                            "pipetrace.spark_writer.recover_with_spark(spark, table=%r) commits "
                            "it", self._run_id, self._spool, exc, self._table)
        return max(committed, done - self._committed)

    def status(self) -> dict[str, Any]:
        """JVM counters, with the Spark writer's: sink_committed_steps, sink_failures, ..."""
        return dict(self._bridge.status(self._run_id))

    def steps(self) -> pd.DataFrame:
        """This run's committed steps, read back through Spark, ordered by seq.

        Reads through a session of pipetrace's own, so reading the table is never a step.
        """
        if self._reader is None:
            from pyspark.sql import SparkSession

            self._reader = SparkSession(self._spark.sparkContext, self._bridge.internal_session())
        spark = self._reader
        frame = (spark.table(self._table) if is_table_name(self._table)
                 else spark.read.format(self.format).load(self._table))
        return frame.where(frame.run_id == self._run_id).orderBy("seq").toPandas()
