"""The ``pipeline_runs`` table beside ``pipeline_steps``: one row per run, committed exactly once.

Its columns are ``resources/runs_schema.json`` (comments in field metadata), its name,
description and properties ``resources/runs_table.json`` (append-only); the JVM's Spark writer
reads the same files. A run's row is committed with the Delta transaction id
``app_id = "pipetrace-run/<run_id>"``, ``version = the record's version`` (its start in ms), so
a crash between the commit and the removal of the record's spool files never adds it twice.

Example::

    >>> from pipetrace.runs_table import runs_arrow_schema
    >>> str(runs_arrow_schema().field("started_at").type)
    'timestamp[us, tz=UTC]'
"""

from __future__ import annotations

import contextlib
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import DeltaError, TableNotFoundError

from pipetrace import run_record
from pipetrace.errors import ConfigError, SpoolError, TableError
from pipetrace.guard import check_location
from pipetrace.locations import is_local, runs_table
from pipetrace.schema import rows_to_arrow

__all__ = ["RUNS_TABLE_NAME", "commit_record", "ensure_runs_table", "record_app_id",
           "runs_arrow_schema", "runs_delta_schema"]

_REQUIRED = ("schema_version", "run_id", "started_at", "ended_at", "status")
_MAX_COMMIT_RETRIES = 100


def _resource(name: str) -> str:
    return resources.files("pipetrace").joinpath("resources").joinpath(name).read_text("utf-8")


@functools.cache
def _table_json() -> dict[str, Any]:
    return dict(json.loads(_resource("runs_table.json")))


RUNS_TABLE_NAME: str = str(_table_json()["name"])


@functools.cache
def runs_delta_schema() -> DeltaSchema:
    """The pipeline_runs schema as a ``deltalake.Schema`` (column comments included).

    Example::

        >>> "script_sha256" in [f.name for f in runs_delta_schema().fields]
        True
    """
    return DeltaSchema.from_json(_resource("runs_schema.json"))


@functools.cache
def runs_arrow_schema() -> pa.Schema:
    """The pipeline_runs schema as a ``pyarrow.Schema``.

    Example::

        >>> runs_arrow_schema().field("run_id").nullable
        False
    """
    return pa.schema(runs_delta_schema().to_arrow())


def record_app_id(run_id: str) -> str:
    """The Delta transaction app id of a run's record.

    Example::

        >>> record_app_id("20261125-033511-a1b2c3")
        'pipetrace-run/20261125-033511-a1b2c3'
    """
    return f"pipetrace-run/{run_id}"


def ensure_runs_table(table: str) -> DeltaTable:
    """Open the pipeline_runs table at ``table`` (a path), creating it if missing.

    Example::

        >>> ensure_runs_table("/tmp/pipeline_runs").metadata().name  # doctest: +SKIP
        'pipeline_runs'
    """
    try:
        check_location(table, required=_REQUIRED, kind=RUNS_TABLE_NAME)
    except ConfigError as exc:
        raise TableError(str(exc)) from None
    try:
        return DeltaTable(table)
    except TableNotFoundError:
        pass
    except (DeltaError, OSError) as exc:
        raise TableError(f"cannot open the {RUNS_TABLE_NAME} table at {table}: {exc}") from exc
    spec = _table_json()
    try:
        if is_local(table):
            Path(table).mkdir(parents=True, exist_ok=True)
        return DeltaTable.create(table, schema=runs_delta_schema(), mode="ignore",
                                 name=RUNS_TABLE_NAME, description=str(spec["description"]),
                                 configuration={str(k): str(v)
                                                for k, v in spec["properties"].items()})
    except (DeltaError, OSError) as exc:
        with contextlib.suppress(DeltaError, OSError):
            return DeltaTable(table)  # lost a creation race to another committer
        raise TableError(f"cannot create the {RUNS_TABLE_NAME} table at {table}: {exc}") from exc


def commit_record(run_dir: Path, steps_table: str) -> bool:
    """Commit the run's record beside ``steps_table`` if the run is over; True if the row is
    in the table now (committed now or before). Its spool files are removed afterwards.

    The caller holds the run's commit lock. Raises :class:`TableError` when the table cannot
    be written (the record stays in the spool).

    Example::

        >>> commit_record(Path("/nonexistent/run"), "/tmp/pipeline_steps")
        False
    """
    return run_record.commit_when_over(run_dir, lambda row, version: _write(
        row, version, run_dir, steps_table))


def _write(row: dict[str, Any], version: int, run_dir: Path, steps_table: str) -> None:
    target = runs_table(steps_table)
    dt = ensure_runs_table(target)
    app = record_app_id(str(row["run_id"]))
    done = dt.transaction_version(app)
    if done is None or done < version:
        try:
            data = rows_to_arrow([row], schema=runs_arrow_schema())
        except SpoolError as exc:
            raise TableError(f"the record of run {row['run_id']} in {run_dir} does not fit "
                             f"{RUNS_TABLE_NAME}: {exc}") from exc
        try:
            write_deltalake(dt, data, mode="append", schema_mode="merge",
                            commit_properties=CommitProperties(
                                app_transactions=[Transaction(app_id=app, version=version)],
                                max_commit_retries=_MAX_COMMIT_RETRIES))
        except (DeltaError, OSError) as exc:
            raise TableError(f"committing the record of run {row['run_id']} to {target} "
                             f"failed: {exc}; it stays in {run_dir}, rerun `pipetrace "
                             "ingest`") from exc
