"""Query the pipeline_steps table with SQL (DataFusion through delta-rs), no Spark needed.

Example::

    >>> from pipetrace.query import sql
    >>> sql("SELECT action, count(*) AS n FROM pipeline_steps GROUP BY action")  # doctest: +SKIP
    pyarrow.Table
    action: string
    n: int64
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import DeltaError, TableNotFoundError

from pipetrace.errors import QueryError, TableError
from pipetrace.locations import resolve_table, runs_table
from pipetrace.runs_table import RUNS_TABLE_NAME
from pipetrace.schema import TABLE_NAME

__all__ = ["latest_run_id", "open_table", "sql", "steps"]


def open_table(table: str | None = None) -> DeltaTable:
    """Open the pipeline_steps table; :class:`TableError` if there is none yet.

    Example::

        >>> open_table("/tmp/pipeline_steps").version()  # doctest: +SKIP
        3
    """
    uri = resolve_table(table)
    try:
        return DeltaTable(uri)
    except TableNotFoundError:
        raise TableError(f"no {TABLE_NAME} table at {uri}: run `pipetrace run script.py` or "
                         "attach(spark) first, or point --table / PIPETRACE_TABLE at it") from None
    except (DeltaError, OSError) as exc:
        raise TableError(f"cannot open the {TABLE_NAME} table at {uri}: {exc}") from exc


def _with_runs(builder: QueryBuilder, query: str, table: str | None) -> QueryBuilder:
    """Register the run records (``pipeline_runs``, beside the steps table) for a query that
    names them."""
    if RUNS_TABLE_NAME not in query:
        return builder
    uri = runs_table(resolve_table(table))
    try:
        return builder.register(RUNS_TABLE_NAME, DeltaTable(uri))
    except TableNotFoundError:
        raise TableError(f"no {RUNS_TABLE_NAME} table at {uri} yet: a run's row is written "
                         "when it ends (pipetrace run, detach()) or by `pipetrace recover`") from None
    except (DeltaError, OSError) as exc:
        raise TableError(f"cannot open the {RUNS_TABLE_NAME} table at {uri}: {exc}") from exc


def sql(query: str, *, table: str | None = None) -> pa.Table:
    """Run a SQL query in which the table is called ``pipeline_steps`` (and the run records
    beside it ``pipeline_runs``); return Arrow.

    Example::

        >>> sql("SELECT count(*) AS n FROM pipeline_steps").column("n")[0].as_py()  # doctest: +SKIP
        12
    """
    builder = _with_runs(QueryBuilder().register(TABLE_NAME, open_table(table)), query, table)
    try:
        reader = builder.execute(query)
        result = pa.table(reader.read_all())
    except Exception as exc:  # DataFusion raises plain Exception subclasses for SQL errors
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryError(f"query failed: {message}; the table is called {TABLE_NAME} "
                         "(see its columns with: SELECT * FROM pipeline_steps LIMIT 1)") from exc
    # DataFusion answers with view types (string_view) that pandas cannot convert yet.
    target = pa.schema([f.with_type(_plain(f.type)) for f in result.schema],
                       metadata=result.schema.metadata)
    return result if target.equals(result.schema) else result.cast(target)


def _plain(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_binary_view(dtype):
        return pa.binary()
    if pa.types.is_map(dtype):
        return pa.map_(dtype.key_field.with_type(_plain(dtype.key_type)),
                       dtype.item_field.with_type(_plain(dtype.item_type)))
    if pa.types.is_list(dtype) or pa.types.is_list_view(dtype):
        return pa.list_(dtype.value_field.with_type(_plain(dtype.value_type)))
    if pa.types.is_large_list(dtype) or pa.types.is_large_list_view(dtype):
        return pa.large_list(dtype.value_field.with_type(_plain(dtype.value_type)))
    if pa.types.is_struct(dtype):
        return pa.struct([f.with_type(_plain(f.type)) for f in dtype])
    return dtype


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def latest_run_id(table: str | None = None) -> str | None:
    """The run whose last step was captured most recently; None for an empty table.

    Example::

        >>> latest_run_id("/tmp/pipeline_steps")  # doctest: +SKIP
        '20261125-033511-a1b2c3'
    """
    result = sql(
        "SELECT run_id, max(captured_at) AS last FROM pipeline_steps "
        "GROUP BY run_id ORDER BY last DESC, run_id DESC LIMIT 1",
        table=table,
    )
    return result.column("run_id")[0].as_py() if result.num_rows else None


_NULLABLE = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def steps(run_id: str | None = None, *, table: str | None = None) -> pd.DataFrame:
    """A run's steps ordered by ``seq`` as pandas (the latest run by default).

    Empty (with the table's columns) when the table has no steps or the run is unknown.

    Example::

        >>> steps(table="/tmp/pipeline_steps")[["seq", "action", "status"]]  # doctest: +SKIP
           seq   action     status
        0    1    count  SUCCEEDED
    """
    chosen = run_id if run_id is not None else latest_run_id(table)
    where = f"run_id = {_literal(chosen)}" if chosen is not None else "false"
    result = sql(f"SELECT * FROM pipeline_steps WHERE {where} ORDER BY seq", table=table)
    # Nullable integers stay integers (rows_out of a DDL command is null, not NaN).
    return result.to_pandas(types_mapper=_NULLABLE.get)
