"""``attach(spark)``: capture every action of a running SparkSession, no restart needed.

Example::

    >>> import pipetrace.spark
    >>> with pipetrace.spark.attach(spark, tags={"team": "risk"}) as trace:  # doctest: +SKIP
    ...     spark.read.parquet("loans").filter("amount > 0").count()
    ...     trace.flush()
    ...     trace.steps()[["seq", "action", "rows_out"]]
       seq action  rows_out
    0    1  count      9120
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from deltalake import DeltaTable

from pipetrace._jvm import JvmBridge
from pipetrace.errors import PipetraceError
from pipetrace import spool as sp
from pipetrace.ingest import IngestResult, ensure_table, ingest
from pipetrace.locations import resolve_spool, resolve_table
from pipetrace.query import steps as query_steps
from pipetrace.runner import new_run_id

__all__ = ["FlushResult", "Handle", "attach"]

log = logging.getLogger("pipetrace")

# One live handle per (Spark application, run): attach() is idempotent, and the JVM keeps
# the listener registry, so Python only needs to find the handle that mirrors it.
_LIVE: weakref.WeakValueDictionary[tuple[str, str], Handle] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class FlushResult:
    """What a flush did: steps captured so far, steps committed now, and whether it timed out."""

    run_id: str
    captured: int
    committed: int
    dropped: int
    timed_out: bool


class Handle:
    """A capture attached to one SparkSession. Use :func:`attach` to get one."""

    def __init__(self, bridge: JvmBridge, info: dict[str, Any], table: str, app_id: str,
                 commit_interval: float) -> None:
        self._bridge = bridge
        self._key = (app_id, info["run_id"])
        self.run_id: str = info["run_id"]
        self.table = table
        self.spool = info["spool"]
        self.mode: str = info["mode"]
        self._commit_lock = threading.Lock()
        self._table: DeltaTable | None = None  # opened once, then updated incrementally
        self._stop = threading.Event()
        self._detached = False
        self._thread = threading.Thread(target=self._commit_loop, args=(commit_interval,),
                                        name=f"pipetrace-commit-{self.run_id}", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    def __repr__(self) -> str:
        return f"<pipetrace Handle run_id={self.run_id!r} table={self.table!r}>"

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _commit(self, *, if_sealed: bool = False) -> IngestResult:
        # The background committer runs in the user's driver every second: keep it cheap
        # (benchmarks/README.md). Reopening the table replays its whole Delta log (~0.1 s at
        # 70 versions on a 2-core machine), so it is opened once and updated incrementally,
        # and a tick with no sealed segment does not touch the table at all.
        with self._commit_lock:
            if if_sealed and not sp.sealed_segments(Path(self.spool) / self.run_id):
                return IngestResult(table=self.table)
            if self._table is None:
                self._table = ensure_table(resolve_table(self.table))
            return ingest(spool=self.spool, table=self.table, run_ids=[self.run_id],
                          opened=self._table)

    def _commit_loop(self, interval: float) -> None:
        # Batches: the JVM seals a spool segment at least every second; commit what is sealed.
        warned = False
        while not self._stop.wait(interval):
            try:
                self._commit(if_sealed=True)
            except Exception as exc:  # noqa: BLE001 - steps stay in the spool
                if not warned:
                    log.warning("pipetrace: cannot commit run %s to %s yet (%s); steps stay in "
                                "the spool %s", self.run_id, self.table, exc, self.spool)
                    warned = True

    def flush(self, timeout: float = 60.0) -> FlushResult:
        """Wait until every finished action is captured, then commit it to the table.

        After ``flush()`` returns, every step of the actions run so far is queryable.

        Example::

            >>> spark.range(10).count(); trace.flush().committed  # doctest: +SKIP
            1
        """
        status = self._bridge.flush(self.run_id, int(timeout * 1000)) if not self._detached \
            else {"captured": 0, "dropped": 0, "timed_out": False}
        result = self._commit()
        return FlushResult(self.run_id, int(status.get("captured", 0)), result.steps,
                           int(status.get("dropped", 0)), bool(status.get("timed_out", False)))

    def detach(self, timeout: float = 60.0) -> FlushResult:
        """Stop capturing, flush, and commit everything captured. Idempotent.

        Example::

            >>> trace.detach().committed  # doctest: +SKIP
            0
        """
        if self._detached:
            return FlushResult(self.run_id, 0, 0, 0, False)
        status = self._bridge.detach(int(timeout * 1000))
        self._detached = True
        self._stop.set()
        self._thread.join(timeout)
        result = self._commit()
        _LIVE.pop(self._key, None)
        atexit.unregister(self._at_exit)
        return FlushResult(self.run_id, int(status.get("captured", 0)), result.steps,
                           int(status.get("dropped", 0)), bool(status.get("timed_out", False)))

    def steps(self) -> pd.DataFrame:
        """This run's steps committed so far, ordered by seq (call :meth:`flush` first).

        Example::

            >>> trace.steps()["action"].tolist()  # doctest: +SKIP
            ['count', 'collect']
        """
        return query_steps(self.run_id, table=self.table)

    def status(self) -> dict[str, Any]:
        """Capture counters from the JVM: captured, dropped, skipped steps, listener errors."""
        return self._bridge.status(self.run_id)

    def _at_exit(self) -> None:
        # Interpreter exit: commit what reached the spool; the JVM may already be gone.
        try:
            self.detach(timeout=10)
        except Exception:  # noqa: BLE001
            try:
                self._stop.set()
                self._commit()
            except Exception as exc:  # noqa: BLE001
                log.warning("pipetrace: steps of run %s remain in the spool %s (%s); run "
                            "`pipetrace ingest --spool %s --table %s`", self.run_id,
                            self.spool, exc, self.spool, self.table)


def attach(
    spark: Any,
    *,
    table: str | None = None,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
    spool: str | None = None,
    plan_max_chars: int | None = None,
    commit_interval: float = 1.0,
) -> Handle:
    """Capture every Spark action of ``spark`` into the ``pipeline_steps`` Delta table.

    Loads the listener jar into the running driver (no restart) and registers it on this
    session. Calling it again on the same session returns the same capture. Steps are
    committed in the background every ``commit_interval`` seconds and on :meth:`Handle.flush`.

    Args:
        spark: a classic (non-Connect) SparkSession, Spark 4.x.
        table: local path of the Delta table (default ``$PIPETRACE_TABLE`` or
            ``~/.pipetrace/pipeline_steps``).
        run_id: id of this run (default: a new ``YYYYmmdd-HHMMSS-xxxxxx``).
        tags: string map stored on every step (team, ticket, model name...).
        spool: spool directory (default ``$PIPETRACE_SPOOL`` or ``~/.pipetrace/spool``).
        plan_max_chars: cap of each stored plan text (default 100,000).

    Example::

        >>> trace = attach(spark, tags={"ticket": "MV-1432"})  # doctest: +SKIP
        >>> trace.run_id  # doctest: +SKIP
        '20261125-033512-a1b2c3'
    """
    if tags is not None and not all(isinstance(k, str) and isinstance(v, str)
                                    for k, v in tags.items()):
        raise PipetraceError("tags must map strings to strings, e.g. tags={'team': 'risk'}")
    bridge = JvmBridge(spark)
    resolved_table = resolve_table(table)
    settings = {
        "table": resolved_table,
        "spool": str(resolve_spool(spool)),
        "run_id": run_id or new_run_id(),
        "tags": tags or {},
        "plan_max_chars": plan_max_chars,
    }
    info = bridge.attach(settings)
    app = str(spark.sparkContext.applicationId)
    existing = _LIVE.get((app, info["run_id"]))
    if existing is not None and not existing._detached:
        return existing
    handle = Handle(bridge, info, info.get("table") or resolved_table, app, commit_interval)
    _LIVE[(app, info["run_id"])] = handle
    return handle
