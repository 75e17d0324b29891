"""The writer of a capture whose steps Python commits with delta-rs (``writer="delta-rs"``).

The :class:`~pipetrace.spark.Handle` of such a capture looks for sealed spool segments every
``commit_interval`` seconds and asks this writer to commit them; a failing table is counted,
warned about once, and the steps stay in the spool for ``pipetrace recover``.

Example::

    >>> writer = DeltaRsWriter(bridge, "r1", "/tmp/pipeline_steps", "/tmp/spool")  # doctest: +SKIP
    >>> writer.commit(if_sealed=True, detached=False).steps  # doctest: +SKIP
    0
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from pipetrace.ingest import IngestResult, RunCommitter
from pipetrace.query import steps as query_steps
from pipetrace.recover import recover

__all__ = ["DeltaRsWriter"]

log = logging.getLogger("pipetrace")


class DeltaRsWriter:
    """Commits one run's sealed segments to a Delta path with delta-rs, in the user's driver."""

    name = "delta-rs"
    format = "delta"
    polls = True  # the handle looks for sealed segments every commit_interval

    def __init__(self, bridge: Any, run_id: str, table: str, spool: str) -> None:
        self._bridge = bridge
        self._run_id = run_id
        self._table = table
        self._spool = spool
        self._committer = RunCommitter(spool=spool, table=table, run_id=run_id)
        self._warned = False
        self.failures = 0
        self.last_error: str | None = None

    def describe(self) -> str:
        return ""

    def prepare(self) -> None:
        """Runs of this table left by a crashed process (kill -9, lost machine): commit them."""
        try:
            recover(spool=self._spool, table=self._table, include_unassigned=False)
        except Exception as exc:  # noqa: BLE001 - our own run still captures; status shows it
            log.warning("pipetrace: could not recover earlier runs in %s (%s); run "
                        "`pipetrace recover --spool %s --table %s`", self._spool, exc,
                        self._spool, self._table)

    def commit(self, *, if_sealed: bool, detached: bool) -> IngestResult:
        """Commit what the run has sealed; a tick with nothing sealed does not touch the table."""
        # The background committer runs in the user's driver (benchmarks/README.md).
        if if_sealed and not self._committer.has_sealed():
            return IngestResult(table=self._table)
        try:
            result = self._committer.commit()
        except Exception as exc:
            self._failed(exc)
            raise
        self.last_error = None
        return result

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = str(exc)
        if not self._warned:  # one warning per capture, then only the counter moves
            self._warned = True
            log.warning("pipetrace: cannot commit run %s to %s (%s); steps stay in the spool "
                        "%s. See `pipetrace status --spool %s`; once fixed, `pipetrace recover` "
                        "commits them", self._run_id, self._table, exc, self._spool, self._spool)

    def committed_at_detach(self, committed: int) -> int:
        return committed

    def steps(self) -> pd.DataFrame:
        return query_steps(self._run_id, table=self._table)

    def status(self) -> dict[str, Any]:
        try:
            counters = dict(self._bridge.status(self._run_id))
        except Exception as exc:  # noqa: BLE001 - e.g. the SparkContext was stopped
            log.debug("pipetrace: JVM call failed: %s", exc)
            counters = {}
        counters.update(commit_failures=self.failures, last_error=self.last_error)
        return counters
