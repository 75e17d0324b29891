"""The handle of a capture whose steps Spark's own writer commits (``writer="spark"``).

The JVM's ``SparkSink`` thread commits sealed spool segments with Spark's writer (Delta by
default) into a catalog table or a path; this handle only asks it to commit now on
:meth:`~pipetrace.spark.Handle.flush` and reads the table back through Spark. With
``writer="spool"`` nothing commits: the steps wait in the spool for ``pipetrace ingest``.

Example::

    >>> trace = attach(spark, table="main.audit.pipeline_steps")  # doctest: +SKIP
    >>> type(trace).__name__, trace.writer  # doctest: +SKIP
    ('SparkWriterHandle', 'spark')
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipetrace.ingest import IngestResult
from pipetrace.locations import is_table_name
from pipetrace.spark import Handle

__all__ = ["SparkWriterHandle"]


class SparkWriterHandle(Handle):
    """A :class:`~pipetrace.spark.Handle` for ``writer="spark"`` or ``writer="spool"``."""

    def __init__(self, bridge: Any, info: dict[str, Any], table: str, app_id: str,
                 commit_interval: float, *, spark: Any) -> None:
        self.writer: str = str(info.get("writer", "spark"))
        self.format: str = str(info.get("format") or "delta")
        self._spark = spark
        self._committed = 0
        self._reader: Any = None  # pipetrace's own session for steps(), made on first use
        super().__init__(bridge, info, table, app_id, commit_interval)

    def __repr__(self) -> str:
        return (f"<pipetrace SparkWriterHandle run_id={self.run_id!r} table={self.table!r} "
                f"writer={self.writer!r} format={self.format!r}>")

    def _commit_loop(self, interval: float) -> None:
        # The JVM writer thread commits on its own; nothing to poll or recover from Python
        # (delta-rs recovery of dead runs does not apply to Spark's writer).
        self._recovered.set()

    def _commit(self, *, if_sealed: bool = False) -> IngestResult:
        if self.writer != "spark" or self._detached:
            return IngestResult(table=self.table)
        with self._commit_lock:
            stats = self._bridge.commit(self.run_id)
        total = int(stats.get("sink_committed_steps", 0))
        committed, self._committed = total - self._committed, total
        return IngestResult(table=self.table, steps=committed, runs=[self.run_id])

    def detach(self, timeout: float = 60.0) -> Any:
        """Stop capturing; the JVM commits the last steps before it forgets the run."""
        before = self._committed
        result = super().detach(timeout)
        status = self._bridge.status(self.run_id)
        done = int(status.get("sink_committed_steps", self._committed))
        return type(result)(result.run_id, result.captured, max(result.committed,
                            done - before), result.dropped, result.timed_out)

    def status(self) -> dict[str, Any]:
        """JVM counters, with the Spark writer's: sink_committed_steps, sink_failures, ..."""
        return self._bridge.status(self.run_id)

    def steps(self) -> pd.DataFrame:
        """This run's committed steps, read back through Spark, ordered by seq.

        Reads through a session of pipetrace's own, so reading the table is never a step.
        """
        if self._reader is None:
            from pyspark.sql import SparkSession

            self._reader = SparkSession(self._spark.sparkContext, self._bridge.internal_session())
        spark = self._reader
        frame = (spark.table(self.table) if is_table_name(self.table)
                 else spark.read.format(self.format).load(self.table))
        return frame.where(frame.run_id == self.run_id).orderBy("seq").toPandas()
