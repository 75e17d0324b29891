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
import concurrent.futures.thread  # noqa: F401 - see below
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import pandas as pd

# pyarrow imports these lazily on first pandas conversion; importing concurrent.futures.thread
# registers a threading atexit hook, which fails once the interpreter is exiting, so the
# exit-time commit of a run would fail. Import them now, while that is still allowed.
import pyarrow.pandas_compat  # noqa: F401

from pipetrace import hooks, ml, session_facts
from pipetrace._jvm import JvmBridge
from pipetrace.delta_rs_writer import DeltaRsWriter
from pipetrace.errors import ConfigError, PipetraceError
from pipetrace.guard import check_location
from pipetrace.ingest import IngestResult
from pipetrace.keys import ENV_VAR, key_id, load_key
from pipetrace.locations import resolve_spool, resolve_table
from pipetrace.resume import resume_point
from pipetrace.runner import new_run_id
from pipetrace.spark_writer import SparkWriter

__all__ = ["FlushResult", "Handle", "Writer", "attach"]

log = logging.getLogger("pipetrace")

_EXIT_TIMEOUT_S = 30.0
_MAX_RETRY_WAIT_S = 30.0

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
    error: str | None = None  # why the commit failed (the steps stay in the spool), or why
    # steps were dropped (dropped > 0: those steps are lost)


def _with_drops(error: str | None, status: dict[str, Any]) -> str | None:
    """A flush that lost steps says so in ``error``, whatever the commit did."""
    dropped = int(status.get("dropped", 0) or 0)
    if not dropped:
        return error
    lost = (f"{dropped} step(s) of run {status.get('run_id')} were dropped and are not in the "
            f"table ({status.get('drop_reason') or 'see the driver log'})")
    return f"{lost}; {error}" if error else lost


class Writer(Protocol):
    """Who commits a capture's steps: :class:`~pipetrace.delta_rs_writer.DeltaRsWriter` (Python,
    delta-rs) or :class:`~pipetrace.spark_writer.SparkWriter` (the JVM, Spark's writer).

    The :class:`Handle` owns the threads, the lock and the deadlines; a writer only commits,
    counts and reads back. Writers do not import this module: they are given to the handle.
    """

    name: str     # "delta-rs", "spark" or "spool" (attach's writer=, as the JVM chose it)
    format: str   # table format
    polls: bool   # whether the handle looks for sealed segments every commit_interval
    failures: int
    last_error: str | None

    def describe(self) -> str: ...
    def prepare(self) -> None: ...
    def commit(self, *, if_sealed: bool, detached: bool) -> IngestResult: ...
    def committed_at_detach(self, committed: int) -> int: ...
    def steps(self) -> pd.DataFrame: ...
    def status(self) -> dict[str, Any]: ...


class Handle:
    """A capture attached to one SparkSession. Use :func:`attach` to get one."""

    def __init__(self, bridge: JvmBridge, info: dict[str, Any], table: str, app_id: str,
                 commit_interval: float, *, writer: Writer, measure_steps: bool = False) -> None:
        self._bridge = bridge
        self._key = (app_id, info["run_id"])
        self.run_id: str = info["run_id"]
        self.table = table
        self.spool = info["spool"]
        self.mode: str = info["mode"]
        # Id of the key the run's rows are hashed with (pipetrace.keys); None: unkeyed.
        self.key_id: str | None = info.get("key_id")
        self._writer = writer
        self.writer: str = writer.name
        self.format: str = writer.format
        self._commit_lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()  # set once the writer is prepared (dead runs recovered)
        self._detached = False
        # The agent's line on every action and step (pipetrace.hooks), until detach().
        self.measure_steps = measure_steps
        hooks.install(measure_steps=measure_steps)
        # The run's record (pipeline_runs) is this handle's to end when it started the run.
        self._record_dir: Path | None = (Path(info["spool_dir"]) if info.get("mode") == "attach"
                                         and not info.get("already_attached") else None)
        self._thread = threading.Thread(target=self._commit_loop, args=(commit_interval,),
                                        name=f"pipetrace-commit-{self.run_id}", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    def __repr__(self) -> str:
        return (f"<pipetrace Handle run_id={self.run_id!r} table={self.table!r}"
                f"{self._writer.describe()}>")

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    @property
    def commit_failures(self) -> int:
        """Commits that failed so far (delta-rs; the JVM counts its own writer's)."""
        return self._writer.failures

    @property
    def last_error(self) -> str | None:
        """Why the last commit failed, or None after a commit that worked."""
        return self._writer.last_error

    def _commit(self, *, if_sealed: bool = False) -> IngestResult:
        with self._commit_lock:
            return self._writer.commit(if_sealed=if_sealed, detached=self._detached)

    def _commit_loop(self, interval: float) -> None:
        try:
            self._writer.prepare()
        finally:
            self._ready.set()
        if not self._writer.polls:
            return
        # Batches: the JVM seals a spool segment at least every second; commit what is sealed.
        wait = interval
        while not self._stop.wait(wait):
            try:
                self._commit(if_sealed=True)
                wait = interval
            except Exception:  # noqa: BLE001 - counted and warned once by the writer
                # A broken table is retried less and less often, not 4 times a second.
                wait = min(max(wait * 2, interval), _MAX_RETRY_WAIT_S)

    def _commit_within(self, timeout: float) -> tuple[int, bool, str | None]:
        """Commit in a helper thread, waiting at most ``timeout`` s: (steps, timed_out, error).

        A sink that hangs (a stuck network mount, a lock) must not hang the user's program;
        the helper thread is a daemon and the steps stay in the spool.
        """
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["steps"] = self._commit().steps
            except Exception as exc:  # noqa: BLE001 - reported in the FlushResult
                box["error"] = str(exc)

        worker = threading.Thread(target=work, name=f"pipetrace-flush-{self.run_id}",
                                  daemon=True)
        worker.start()
        worker.join(max(timeout, 0.0))
        if worker.is_alive():
            return 0, True, None
        return int(box.get("steps", 0)), False, box.get("error")

    def flush(self, timeout: float = 60.0) -> FlushResult:
        """Wait until every finished action is captured, then commit it to the table.

        Returns within about ``timeout`` seconds, whatever the sink does; when the table cannot
        be written, ``error`` says why and the steps stay in the spool (never raised: the
        user's job comes first). After a clean ``flush()``, every step of the actions run so
        far is queryable.

        Example::

            >>> spark.range(10).count(); trace.flush().committed  # doctest: +SKIP
            1
        """
        deadline = time.monotonic() + timeout
        status = self._bridge_call(lambda: self._bridge.flush(self.run_id, int(timeout * 1000))) \
            if not self._detached else {}
        self._ready.wait(max(deadline - time.monotonic(), 0.0))
        committed, late, error = self._commit_within(deadline - time.monotonic())
        return FlushResult(self.run_id, int(status.get("captured", 0)), committed,
                           int(status.get("dropped", 0)),
                           bool(status.get("timed_out", False)) or late,
                           _with_drops(error, status))

    def _bridge_call(self, call: Any) -> dict[str, Any]:
        try:
            return dict(call())
        except Exception as exc:  # noqa: BLE001 - e.g. the SparkContext was stopped
            log.debug("pipetrace: JVM call failed: %s", exc)
            return {}

    def detach(self, timeout: float = 60.0) -> FlushResult:
        """Stop capturing, flush, and commit everything captured. Idempotent.

        Like :meth:`flush`, returns within about ``timeout`` seconds and never raises
        because of the table.

        Example::

            >>> trace.detach().committed  # doctest: +SKIP
            0
        """
        if self._detached:
            return FlushResult(self.run_id, 0, 0, 0, False)
        deadline = time.monotonic() + timeout
        hooks.uninstall(measure_steps=self.measure_steps)
        if self._record_dir is not None:
            # The notebook's cells so far, for the driver to redact into the run's record.
            session_facts.record_cells(self._record_dir)
        status = self._bridge_call(lambda: self._bridge.detach(int(timeout * 1000)))
        if self._record_dir is not None:
            session_facts.record_end(self._record_dir)
        self._detached = True
        ml.uninstall()
        self._stop.set()
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        committed, late, error = self._commit_within(deadline - time.monotonic())
        _LIVE.pop(self._key, None)
        atexit.unregister(self._at_exit)
        committed = self._writer.committed_at_detach(committed)
        return FlushResult(self.run_id, int(status.get("captured", 0)), committed,
                           int(status.get("dropped", 0)),
                           bool(status.get("timed_out", False)) or late,
                           _with_drops(error, status))

    def steps(self) -> pd.DataFrame:
        """This run's steps committed so far, ordered by seq (call :meth:`flush` first).

        Example::

            >>> trace.steps()["action"].tolist()  # doctest: +SKIP
            ['count', 'collect']
        """
        return self._writer.steps()

    def report(self, *, format: str = "html",  # noqa: A002 - pipetrace.report's name
               compare: str | None = None) -> Any:
        """This run's report so far (flushes first): an HTML document that displays itself in
        Jupyter and goes to ``displayHTML`` on Databricks, or Markdown with ``format="md"``;
        ``compare``: another run id to include the diff from. See :func:`pipetrace.report`.

        Example::

            >>> displayHTML(trace.report())  # doctest: +SKIP
        """
        from pipetrace import run_data, run_report

        self.flush()
        if self.writer == "delta-rs":
            return run_report.report(self.run_id, table=self.table, format=format,
                                     compare=compare)  # type: ignore[arg-type]
        # Spark's writer (a catalog table): the rows come through Spark, as steps() reads them.
        run = run_data.RunData(self.run_id, self.table, run_data.rows_from_pandas(self.steps()))
        other = run_data.load_run(compare, table=self.table) if compare else None
        text = run_report.render(run, fmt=format, compare=other)  # type: ignore[arg-type]
        return run_report.HtmlReport(text) if format == "html" else text

    def status(self) -> dict[str, Any]:
        """Capture counters from the JVM (captured, dropped, skipped steps, listener errors)
        and of the commits (delta-rs: ``commit_failures``, ``last_error``; Spark's writer:
        ``sink_committed_steps``, ``sink_failures``, ...)."""
        return self._writer.status()

    def _at_exit(self) -> None:
        # Interpreter exit: commit what reached the spool, bounded, whatever state the JVM is in
        # (after spark.stop() the JVM has already sealed the run's last segment).
        result = self.detach(timeout=_EXIT_TIMEOUT_S)
        if result.error or result.timed_out:
            log.warning("pipetrace: steps of run %s remain in the spool %s (%s); run "
                        "`pipetrace recover --spool %s --table %s`", self.run_id, self.spool,
                        result.error or "timed out", self.spool, self.table)


def _refuse_other_settings(info: dict[str, Any], *, table: str | None, resolved_table: str,
                           run_id: str | None, tags: dict[str, str] | None,
                           mask_literals: bool, plan_max_chars: int | None,
                           max_operators: int | None, writer: str,
                           format: str | None) -> None:  # noqa: A002 - the setting's name
    """The session is already captured: a call asking for something else must not silently
    get the first capture (a user asking for literal masking would not get it)."""
    asked = {
        "table": resolved_table if table is not None else None,
        "run_id": run_id,
        "tags": tags,
        "mask_literals": True if mask_literals else None,
        "plan_max_chars": plan_max_chars,
        "max_operators": max_operators,
        "writer": writer if writer != "auto" else None,
        "format": format,
    }
    current = {**info, "writer": info.get("writer")}
    different = {k: v for k, v in asked.items() if v is not None and current.get(k) != v}
    if not different:
        return
    now = ", ".join(f"{k}={current.get(k)!r}" for k in different)
    want = ", ".join(f"{k}={v!r}" for k, v in different.items())
    if info.get("mode") == "conf":
        # Cluster-level capture (init script, spark.sql.queryExecutionListeners) governs the
        # session; a notebook's attach() must not break the notebook over it.
        log.warning("pipetrace: this session is captured by the cluster's configuration (run "
                    "%s with %s); attach() asked for %s, which does not apply. Change the "
                    "cluster's spark.pipetrace.* settings instead", info["run_id"], now, want)
        return
    if different:
        raise ConfigError(
            f"this session is already captured by run {info['run_id']} with {now}; attach() "
            f"was asked for {want}. Call detach() on the first capture (or use it as a "
            "context manager) before attaching with other settings; attach() with the same "
            "settings returns the running capture")


def attach(
    spark: Any,
    *,
    table: str | None = None,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
    spool: str | None = None,
    plan_max_chars: int | None = None,
    max_operators: int | None = None,
    mask_literals: bool = False,
    commit_interval: float = 0.25,
    writer: Literal["auto", "spark", "delta-rs", "spool"] = "auto",
    format: str | None = None,  # noqa: A002 - the setting's name (spark.pipetrace.format)
    hmac_key_file: str | None = None,
    measure_steps: bool = False,
) -> Handle:
    """Capture every Spark action of ``spark`` into the ``pipeline_steps`` Delta table.

    Loads the listener jar into the running driver (no restart) and registers it on this
    session. Calling it again on the same session returns the same capture. Steps are
    committed in the background and on :meth:`Handle.flush`: the JVM seals a spool segment
    once its first step is a second old (or it holds 500 steps), and a background thread looks
    for sealed segments every ``commit_interval`` seconds (a directory listing; a Delta commit
    only when something was sealed), so a step is queryable about 1.5 s after its action.

    Args:
        spark: a classic (non-Connect) SparkSession, Spark 4.x.
        table: local path of the Delta table (default ``$PIPETRACE_TABLE`` or
            ``~/.pipetrace/pipeline_steps``).
        run_id: id of this run (default: a new ``YYYYmmdd-HHMMSS-xxxxxx``).
        tags: string map stored on every step (team, ticket, model name...).
        spool: spool directory (default ``$PIPETRACE_SPOOL`` or ``~/.pipetrace/spool``).
        plan_max_chars: cap of each stored plan text (default 100,000).
        max_operators: cap of the operators listed per step (default 2,000).
        mask_literals: replace literal values (filter values, constants) with ``***`` in
            plans and operator descriptions, for PII; off by default.
        writer: who commits the steps. ``auto``: Spark's own writer for a catalog name
            (``main.audit.pipeline_steps``) or a remote path where the session has Delta;
            delta-rs for local paths. ``spark``/``delta-rs`` force one; ``spool`` leaves the
            steps in the spool for ``pipetrace ingest``. See the README's Databricks section.
        format: table format of Spark's writer (default ``delta``).
        commit_interval: seconds between the background committer's looks for sealed steps.
        hmac_key_file: file holding the key of the keyed row hash (default: the driver's
            ``$PIPETRACE_HMAC_KEY``; no key: plain SHA-256). With a key, only its holders can
            make a row that ``pipetrace verify`` accepts. See the README's "Secrets and tamper
            evidence".
        measure_steps: count the rows into and out of each filter the agent wrote, exactly,
            with Spark's observed metrics (``logical_steps.rows_in``/``rows_out``). Off by
            default: it adds a counting pass per filter and keeps the optimizer from pushing
            that filter below the count (see the README's "The agent's steps").

    Every action and transformation of the session's classic PySpark classes gets the agent's
    ``file:line`` while attached (``call_site``, operators' ``source``, ``logical_steps``):
    thin wrappers on PySpark's public methods, removed by :meth:`Handle.detach`.

    Example::

        >>> trace = attach(spark, tags={"ticket": "MV-1432"})  # doctest: +SKIP
        >>> trace.run_id  # doctest: +SKIP
        '20261125-033512-a1b2c3'
    """
    if tags is not None and not all(isinstance(k, str) and isinstance(v, str)
                                    for k, v in tags.items()):
        raise PipetraceError("tags must map strings to strings, e.g. tags={'team': 'risk'}")
    if writer not in ("auto", "spark", "delta-rs", "spool"):
        raise PipetraceError(f"writer={writer!r}: use 'auto', 'spark', 'delta-rs' or 'spool'")
    # Bad input fails before the driver is touched.
    resolved_table = resolve_table(table, allow_names=writer in ("auto", "spark"))
    check_location(resolved_table)
    resolved_spool = resolve_spool(spool)
    key_file = str(Path(hmac_key_file).resolve()) if hmac_key_file is not None else None
    key = load_key(key_file)
    bridge = JvmBridge(spark)
    # A run id given again continues its run: numbered after its last recorded step.
    resume_seq, resume_hash = (resume_point(run_id, table=resolved_table, spool=resolved_spool)
                               if run_id else (0, None))
    settings = {
        "writer": writer,
        "format": format,
        "table": resolved_table,
        "spool": str(resolved_spool),
        "run_id": run_id or new_run_id(),
        "tags": tags or {},
        "plan_max_chars": plan_max_chars,
        "max_operators": max_operators,
        "mask_literals": mask_literals,
        "resume_seq": resume_seq or None,
        "resume_hash": resume_hash,
        "hmac_key_file": key_file,
    }
    info = bridge.attach(settings)
    if info.get("already_attached"):
        _refuse_other_settings(info, table=table, resolved_table=resolved_table, run_id=run_id,
                               tags=tags, mask_literals=mask_literals,
                               plan_max_chars=plan_max_chars, max_operators=max_operators,
                               writer=writer, format=format)
    if key is not None and info.get("key_id") != key_id(key):
        # The JVM reads $PIPETRACE_HMAC_KEY from its own environment, fixed when it started.
        log.warning("pipetrace: this Python process has a key (%s) but the Spark driver hashes "
                    "run %s with %s; set %s before Spark starts, or pass hmac_key_file=",
                    key_file or f"${ENV_VAR}", info["run_id"],
                    f"key id {info['key_id']}" if info.get("key_id") else "no key", ENV_VAR)
    app = str(spark.sparkContext.applicationId)
    existing = _LIVE.get((app, info["run_id"]))
    if existing is not None and not existing._detached:
        return existing
    if info.get("mode") == "attach" and not info.get("already_attached"):
        session_facts.record_start(Path(info["spool_dir"]))
    table_used = info.get("table") or resolved_table
    writer_of_run: Writer = (
        SparkWriter(bridge, info, table_used, spark=spark)
        if info.get("writer", "delta-rs") != "delta-rs"
        else DeltaRsWriter(bridge, info["run_id"], table_used, info["spool"]))
    handle = Handle(bridge, info, table_used, app, commit_interval, writer=writer_of_run,
                    measure_steps=measure_steps)
    _LIVE[(app, info["run_id"])] = handle
    ml.install()  # Spark ML fits as labelled steps; undone by detach()
    return handle
