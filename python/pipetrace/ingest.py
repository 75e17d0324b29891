"""Commit the spool into the Delta table ``pipeline_steps``, exactly once, with delta-rs.

Each run's sealed segments are committed in ascending order with the Delta transaction id
``app_id = "pipetrace/<run_id>"``, ``version = highest segment number in the commit``, and the
run's anchor (its last step's seq and row_hash, see :mod:`pipetrace.anchors`) in the commit
info. Before
committing, segments at or below the table's txn version for the run are already in the table
(a crash happened between commit and cleanup) and are only deleted; segments are deleted only
after the commit containing them succeeded.

Example::

    >>> result = ingest(spool="/tmp/spool", table="/tmp/pipeline_steps")  # doctest: +SKIP
    >>> result.steps, result.segments  # doctest: +SKIP
    (12, 3)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from pipetrace import run_record
from pipetrace import spool as sp
from pipetrace.anchors import user_metadata
from pipetrace.errors import ConfigError, PipetraceError, SpoolError, TableError
from pipetrace.guard import check_location
from pipetrace.locations import (
    is_local,
    is_table_name,
    normalize_table,
    resolve_spool,
    resolve_table,
)
from pipetrace.runs_table import commit_record
from pipetrace.schema import (
    SCHEMA_VERSION,
    TABLE_NAME,
    delta_schema,
    rows_to_arrow,
    table_description,
    table_properties,
)

__all__ = ["IngestResult", "Quarantined", "RunCommitter", "SkippedRun", "app_id", "ensure_table",
           "ingest", "refuse_catalog_name"]

# Upper bound on the Arrow bytes of one commit, so a long run's backlog does not need
# all of its segments in memory at once.
_MAX_COMMIT_BYTES = 64 * 1024 * 1024
# Blind appends of concurrent committers (other runs, other processes) race for the next log
# version; delta-rs rebases and retries on conflict. Its default (15) can run out when many
# short runs commit at once; retrying costs one log read per attempt.
_MAX_COMMIT_RETRIES = 100
# Conflicts delta-rs does not retry (a concurrent CREATE changed the metadata): re-read, retry.
_STALE_RETRIES = 3


@dataclass(frozen=True)
class SkippedRun:
    """A run that was not ingested, and why."""

    run_id: str
    reason: str


@dataclass(frozen=True)
class Quarantined:
    """A segment moved to ``<run>/quarantine/`` because it could not be read."""

    run_id: str
    path: Path
    reason: str


@dataclass
class IngestResult:
    """What one :func:`ingest` call did."""

    table: str
    steps: int = 0
    failed_steps: int = 0
    failed_seqs: list[int] = field(default_factory=list)  # seq of each failed step committed
    segments: int = 0
    runs: list[str] = field(default_factory=list)
    skipped: list[SkippedRun] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    already_committed: int = 0
    records: int = 0  # runs whose row was committed to pipeline_runs by this call
    removed_runs: list[str] = field(default_factory=list)
    # The table as this call opened it: pass it back as ingest(opened=...) to commit again
    # without replaying the Delta log.
    opened: DeltaTable | None = field(default=None, repr=False, compare=False)


def app_id(run_id: str) -> str:
    """The Delta transaction app id of a run.

    Example::

        >>> app_id("20261125-033511-a1b2c3")
        'pipetrace/20261125-033511-a1b2c3'
    """
    return f"pipetrace/{run_id}"


def refuse_catalog_name(table: str | None) -> None:
    """Raise a :class:`ConfigError` saying how to commit when ``table`` (or
    ``$PIPETRACE_TABLE``) is a catalog table name: delta-rs writes paths only.

    Example::

        >>> refuse_catalog_name("/tmp/pipeline_steps")
    """
    chosen = table if table is not None else os.environ.get("PIPETRACE_TABLE") or None
    if chosen is None or not is_table_name(chosen):
        return
    raise ConfigError(
        f"{chosen!r} is a catalog table: its steps are committed by Spark's writer, which needs "
        "a Spark session with Delta and that catalog, so this command (delta-rs, Delta paths "
        "only) cannot commit them. In such a session run "
        f"pipetrace.spark_writer.recover_with_spark(spark, table={chosen!r}) (attach(spark, "
        f"table={chosen!r}, writer='spark') also does it when it starts), or pass a Delta path")


def ensure_table(table: str) -> DeltaTable:
    """Open the table, creating it from the shared schema (comments, properties) if missing.

    Example::

        >>> ensure_table("/tmp/pipeline_steps").metadata().name  # doctest: +SKIP
        'pipeline_steps'
    """
    try:
        check_location(table)  # never a folder or Delta table of someone else's data
    except ConfigError as exc:
        raise TableError(str(exc)) from None
    try:
        return _with_stats_columns(DeltaTable(table))
    except TableNotFoundError:
        pass
    except (DeltaError, OSError) as exc:
        raise TableError(f"cannot open the table at {table}: {exc}; check the path "
                         "(--table or PIPETRACE_TABLE)") from exc
    try:
        if is_local(table):
            Path(table).mkdir(parents=True, exist_ok=True)
        return DeltaTable.create(
            table,
            schema=delta_schema(),
            mode="ignore",  # another committer may have created it meanwhile
            name=TABLE_NAME,
            description=table_description(),
            configuration=table_properties(),
        )
    except (DeltaError, OSError) as exc:
        with contextlib.suppress(DeltaError, OSError):
            return DeltaTable(table)  # lost a creation race to another committer
        raise TableError(f"cannot create the pipeline_steps table at {table}: {exc}"
                         f"{_disk_full_hint(table)}; choose a writable location with --table "
                         "or PIPETRACE_TABLE") from exc


def _with_stats_columns(dt: DeltaTable) -> DeltaTable:
    """A table created before pipetrace restricted Delta's statistics gets the restriction.

    Delta keeps min/max statistics of a commit's columns in ``_delta_log`` for good; for text
    columns (errors, plans) that is their first characters, outside the rows themselves. Only
    columns that cannot hold a secret (ids, times, counts, action, status) get statistics.
    A table whose owner set the property already keeps the owner's choice.
    """
    key = "delta.dataSkippingStatsColumns"
    if key in dt.metadata().configuration:
        return dt
    with contextlib.suppress(DeltaError):  # another committer set it first: same value
        dt.alter.set_table_properties({key: table_properties()[key]})
        dt.update_incremental()
    return dt


def _commit_error(run_id: str, table_uri: str, run_dir: Path, exc: Exception) -> TableError:
    return TableError(f"committing run {run_id} to {table_uri} failed: {exc}"
                      f"{_disk_full_hint(table_uri)}; its segments stay in {run_dir}, "
                      "rerun `pipetrace ingest`")


def _disk_full_hint(table: str) -> str:
    """delta-rs reports ENOSPC as a 'Generic LocalFileSystem error': say what it was."""
    if not is_local(table):
        return ""
    path = Path(table)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        stat = os.statvfs(path)
    except OSError:
        return ""
    free = stat.f_bavail * stat.f_frsize
    return f" (no space left: {free} bytes free on its file system)" if free < 1 << 20 else ""


def ingest(
    *,
    spool: str | Path | None = None,
    table: str | None = None,
    run_ids: Iterable[str] | None = None,
    opened: DeltaTable | None = None,
) -> IngestResult:
    """Commit the spool's finished segments into the table; return what was done.

    Runs whose manifest names another table are skipped (and reported). The table is
    created on first use. ``opened`` is that table already opened by a caller that commits
    again and again (attach's background committer): it is brought up to date incrementally
    instead of replaying the whole Delta log on every call.

    Example::

        >>> r = ingest(table="/tmp/pipeline_steps", run_ids=["20261125-033511-a1b2c3"])  # doctest: +SKIP
        >>> print(r.steps, r.table)  # doctest: +SKIP
        4 /tmp/pipeline_steps
    """
    refuse_catalog_name(table)
    table_uri = resolve_table(table)
    spool_dir = resolve_spool(spool)
    result = IngestResult(table=table_uri)
    wanted = set(run_ids) if run_ids is not None else None
    runs = [r for r in sp.list_runs(spool_dir) if wanted is None or r.name in wanted]
    try:
        dt = opened if opened is not None else ensure_table(table_uri)
    except TableError as exc:
        # Visible to `pipetrace status` from any process, not only to this caller.
        for run_dir in runs:
            with contextlib.suppress(SpoolError):
                if _mismatch(sp.read_manifest(run_dir), run_dir, table_uri) is None:
                    sp.record_error(run_dir, str(exc))
        raise
    result.opened = dt
    for run_dir in runs:
        _ingest_run(run_dir, dt, table_uri, result)
    return result


class RunCommitter:
    """Commits one run's sealed segments again and again while it is captured (attach's and
    ``pipetrace run``'s background committers).

    It runs beside the user's job, so it is kept cheap: the table is opened once and then
    updated incrementally (opening replays the whole Delta log: ~0.1 s at 70 versions on 2
    cores), and :meth:`has_sealed` lets a caller skip a tick without touching the table.

    Example::

        >>> c = RunCommitter(spool="/tmp/spool", table="/tmp/pipeline_steps", run_id="r1")
        >>> c.has_sealed()
        False
    """

    def __init__(self, *, spool: str | Path, table: str, run_id: str) -> None:
        self.spool = spool
        self.table = table
        self.run_id = run_id
        self._opened: DeltaTable | None = None

    def has_sealed(self) -> bool:
        """Whether the run has a sealed segment waiting to be committed."""
        return bool(sp.sealed_segments(Path(self.spool) / self.run_id))

    def commit(self) -> IngestResult:
        """:func:`ingest` the run; raises what it raises."""
        try:
            return self._ingest()
        except Exception:
            if self._opened is None:
                raise
            # The table kept open may have been dropped or replaced meanwhile: open it afresh
            # once before calling it a failure.
            self._opened = None
            return self._ingest()

    def _ingest(self) -> IngestResult:
        result = ingest(spool=self.spool, table=self.table, run_ids=[self.run_id],
                        opened=self._opened)
        self._opened = result.opened
        return result


def commit_record_only(run_dir: Path, table_uri: str) -> bool:
    """Commit the record of a run whose driver never spooled anything (no manifest: the script
    never started Spark, or it was killed before); True if its row is in the table now. The
    run directory is removed then. Runs with a manifest are left to :func:`ingest`.

    Example::

        >>> commit_record_only(Path("/nonexistent/run"), "/tmp/pipeline_steps")
        False
    """
    if not run_dir.is_dir() or (run_dir / sp.MANIFEST).exists():
        return False
    with sp.commit_lock(run_dir):
        if (run_dir / sp.MANIFEST).exists() or not commit_record(run_dir, table_uri):
            return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def _ingest_run(run_dir: Path, dt: DeltaTable, table_uri: str, result: IngestResult) -> None:
    try:
        manifest = sp.read_manifest(run_dir)
    except SpoolError as exc:
        if not (run_dir / sp.MANIFEST).exists() and run_record.record_table(run_dir) == table_uri:
            if commit_record_only(run_dir, table_uri):  # not before its Python side is over
                result.records += 1
            return
        if run_dir.exists() and not sp.writer_alive(run_dir):
            result.skipped.append(SkippedRun(run_dir.name, str(exc)))
        return  # a live writer may not have written its manifest yet
    reason = _mismatch(manifest, run_dir, table_uri)
    if reason:
        result.skipped.append(SkippedRun(manifest.run_id, reason))
        return
    with sp.commit_lock(run_dir):
        if not (run_dir / sp.MANIFEST).exists():
            return  # another committer finished and removed the run while we waited
        try:
            _commit_run(run_dir, manifest, dt, table_uri, result)
            # The run's own row (pipeline_runs), once the run is over.
            if commit_record(run_dir, table_uri):
                result.records += 1
        except (TableError, OSError) as exc:
            sp.record_error(run_dir, str(exc))
            raise
        sp.clear_error(run_dir)
        if sp.remove_run_if_done(run_dir):
            result.removed_runs.append(manifest.run_id)


def _mismatch(manifest: sp.Manifest, run_dir: Path, table_uri: str) -> str | None:
    if manifest.run_id != run_dir.name:
        return (f"run.json says run_id {manifest.run_id!r} but the directory is {run_dir.name!r}; "
                "fix or delete the run directory")
    if manifest.schema_version is not None and manifest.schema_version > SCHEMA_VERSION:
        return (f"written with schema version {manifest.schema_version}, this pipetrace reads "
                f"up to {SCHEMA_VERSION}: upgrade pipetrace (pip install -U pipetrace)")
    if manifest.table is None:
        return None
    if is_table_name(manifest.table):
        return (f"meant for catalog table {manifest.table}: commit it with Spark, "
                f"pipetrace.spark_writer.recover_with_spark(spark, table={manifest.table!r})")
    try:
        target = normalize_table(manifest.table)
    except PipetraceError:
        target = manifest.table
    if target != table_uri:
        return f"meant for table {target}, not {table_uri}: ingest it with --table {target}"
    return None


def _commit_run(
    run_dir: Path, manifest: sp.Manifest, dt: DeltaTable, table_uri: str, result: IngestResult
) -> None:
    run_id = manifest.run_id
    sp.recover_open_segments(run_dir)
    dt.update_incremental()
    done = dt.transaction_version(app_id(run_id))
    batch: list[pa.Table] = []
    numbers: list[int] = []
    size = 0
    for seg in sp.sealed_segments(run_dir):
        if done is not None and seg.number <= done:
            seg.path.unlink(missing_ok=True)  # committed before a crash; only cleanup was lost
            result.already_committed += 1
            continue
        try:
            steps = _read_steps(seg, run_id)
        except SpoolError as exc:
            moved = sp.quarantine(seg, str(exc))
            result.quarantined.append(Quarantined(run_id, moved, str(exc)))
            continue
        batch.append(steps)
        numbers.append(seg.number)
        size += steps.nbytes
        if size >= _MAX_COMMIT_BYTES:
            _commit(dt, table_uri, manifest, batch, numbers, run_dir=run_dir, result=result)
            batch, numbers, size = [], [], 0
    if numbers:
        _commit(dt, table_uri, manifest, batch, numbers, run_dir=run_dir, result=result)


def _read_steps(seg: sp.Segment, run_id: str) -> pa.Table:
    rows = sp.read_segment(seg.path)
    try:
        steps = rows_to_arrow(rows)
    except SpoolError as exc:
        raise SpoolError(f"{seg.path.name} {exc}") from None
    for index, value in enumerate(steps.column("run_id").to_pylist()):
        if value != run_id:
            raise SpoolError(f"{seg.path.name} row {index + 1}: run_id {value!r} does not match "
                             f"its run directory {run_id!r}")
    return steps


def _anchor(data: pa.Table, manifest: sp.Manifest) -> dict[str, str]:
    """Commit info recording the run's last step in this commit (see pipetrace.anchors)."""
    seqs = data.column("seq")
    last = pc.index(seqs, pc.max(seqs)).as_py()
    row_hash = data.column("row_hash")[last].as_py()
    if row_hash is None:
        return {}  # not a step the listener hashed: nothing to anchor
    return {"userMetadata": user_metadata(manifest.run_id, seqs[last].as_py(), row_hash,
                                          manifest.key_id)}


def _commit(
    dt: DeltaTable,
    table_uri: str,
    manifest: sp.Manifest,
    batch: list[pa.Table],
    numbers: list[int],
    *,
    run_dir: Path,
    result: IngestResult,
) -> None:
    run_id = manifest.run_id
    data = pa.concat_tables(batch)
    if data.num_rows:
        txn = Transaction(app_id=app_id(run_id), version=max(numbers))
        anchor = _anchor(data, manifest)
        for attempt in range(_STALE_RETRIES + 1):
            try:
                # merge: a table created by an older pipetrace gains the columns added since
                # (additive evolution only; older rows read them as null)
                write_deltalake(dt, data, mode="append", schema_mode="merge",
                                commit_properties=CommitProperties(
                                    custom_metadata=anchor, app_transactions=[txn],
                                    max_commit_retries=_MAX_COMMIT_RETRIES))
                break
            except CommitFailedError as exc:
                # A conflict delta-rs does not retry by itself, e.g. "Metadata changed since
                # last commit": two committers creating the table at once can both commit a
                # CREATE (the loser's is retried as version 1), and an append that read the
                # table before the second one fails. Nothing of this batch was committed:
                # read the table again and retry.
                if attempt == _STALE_RETRIES:
                    raise _commit_error(run_id, table_uri, run_dir, exc) from exc
                dt.update_incremental()
            except (DeltaError, OSError) as exc:
                raise _commit_error(run_id, table_uri, run_dir, exc) from exc
        dt.update_incremental()
    # Empty segments carry no rows, so deleting them without a commit cannot duplicate or lose.
    for number in numbers:
        (run_dir / sp.segment_name(number)).unlink(missing_ok=True)
    result.steps += data.num_rows
    failed = pc.equal(data.column("status"), "FAILED")
    result.failed_steps += pc.sum(failed).as_py() or 0
    result.failed_seqs += [s for s in data.column("seq").filter(failed).to_pylist() if s is not None]
    result.segments += len(numbers)
    if run_id not in result.runs:
        result.runs.append(run_id)
