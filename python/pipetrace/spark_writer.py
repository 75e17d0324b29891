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

from typing import Any

import pandas as pd

from pipetrace.ingest import IngestResult
from pipetrace.locations import is_table_name

__all__ = ["SparkWriter"]


class SparkWriter:
    """The handle's writer for ``writer="spark"`` or ``writer="spool"``: the JVM commits."""

    polls = False  # the JVM's writer thread commits on its own; nothing to poll from Python

    def __init__(self, bridge: Any, info: dict[str, Any], table: str, *, spark: Any) -> None:
        self.name: str = str(info.get("writer", "spark"))
        self.format: str = str(info.get("format") or "delta")
        self._bridge = bridge
        self._run_id: str = info["run_id"]
        self._table = table
        self._spark = spark
        self._committed = 0
        self._reader: Any = None  # pipetrace's own session for steps(), made on first use
        self.failures = 0  # the JVM counts its writer's failures (status: sink_failures)
        self.last_error: str | None = None

    def describe(self) -> str:
        return f" writer={self.name!r} format={self.format!r}"

    def prepare(self) -> None:
        """Nothing: recovering dead runs with delta-rs does not apply to Spark's writer."""

    def commit(self, *, if_sealed: bool, detached: bool) -> IngestResult:
        """Ask the JVM to seal and commit the run now; the steps it committed since last time."""
        if self.name != "spark" or detached:
            return IngestResult(table=self._table)
        stats = self._bridge.commit(self._run_id)
        total = int(stats.get("sink_committed_steps", 0))
        committed, self._committed = total - self._committed, total
        return IngestResult(table=self._table, steps=committed, runs=[self._run_id])

    def committed_at_detach(self, committed: int) -> int:
        """The JVM commits the last steps itself when it detaches: count those too."""
        done = int(self._bridge.status(self._run_id).get("sink_committed_steps", self._committed))
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
