"""How the CLI prints query results: Arrow rows as JSON-ready values, and as text cells.

Shared by cli.py (``pipetrace sql``, ``steps``), cli_databricks.py (``pipetrace audit``) and
the reports.

Example::

    >>> import pyarrow as pa
    >>> tags = pa.array([[("team", "risk")]], pa.map_(pa.string(), pa.string()))
    >>> rows = json_rows(pa.table({"tags": tags}))
    >>> rows, cell(rows[0]["tags"])
    ([{'tags': {'team': 'risk'}}], '{"team":"risk"}')
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
from typing import Any

import pyarrow as pa

__all__ = ["cell", "error_summary", "json_rows", "jsonable", "jsonable_value"]


def jsonable(value: Any, dtype: pa.DataType) -> Any:
    """A value from ``to_pylist`` as JSON: maps as objects, timestamps as ISO-8601."""
    if value is None:
        return None
    if pa.types.is_map(dtype):
        return {str(k): jsonable(v, dtype.item_type) for k, v in value}
    if pa.types.is_struct(dtype):
        return {f.name: jsonable(value.get(f.name), f.type) for f in dtype}
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(dtype):
        return [jsonable(v, dtype.value_type) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The table's rows as JSON-ready dicts (see :func:`jsonable`)."""
    columns = {f.name: [jsonable(v, f.type) for v in table.column(f.name).to_pylist()]
               for f in table.schema}
    return [{name: columns[name][i] for name in table.column_names} for i in range(table.num_rows)]


def cell(value: Any) -> str:
    """A JSON-ready value as one text cell: nested values as compact JSON, null as empty."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def jsonable_value(value: Any) -> Any:
    """Plain Python data (dicts, lists, timestamps, sets) as JSON-ready values, without an
    Arrow type to go by.

    Example::

        >>> jsonable_value({"at": dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc), "s": {2, 1}})
        {'at': '2026-01-02T00:00:00Z', 's': [1, 2]}
    """
    if isinstance(value, dict):
        return {str(k): jsonable_value(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [jsonable_value(v) for v in sorted(value, key=str)]
    if isinstance(value, (list, tuple)):
        return [jsonable_value(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (dt.date, dt.time, decimal.Decimal)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Spark's error condition and its message, with the exception's simple class name, e.g.
# "SparkNumberFormatException: [CAST_INVALID_INPUT] The value '1d' of ..."
_ERROR_CONDITION = re.compile(r"(?:[\w$]+(?:Exception|Error): )?\[[A-Z][A-Z0-9_.]+\][^\n]*")


def error_summary(error: str) -> str:
    """The part of a step's error that says what went wrong: Spark's error condition (with the
    exception's simple class name) and its message where the text has one (Spark 3.5 wraps a
    task's failure in "Job aborted due to stage failure: ..." and puts the cause further in),
    else the first line.

    Example::

        >>> error_summary("SparkException: Job aborted ... (TID 10): "
        ...               "NumberFormatException: [CAST_INVALID_INPUT] The value '1d' ...")
        "NumberFormatException: [CAST_INVALID_INPUT] The value '1d' ..."
        >>> error_summary("AnalysisException: no such table\\n\\tat Dataset.scala")
        'AnalysisException: no such table'
    """
    found = _ERROR_CONDITION.search(error)
    return found.group(0) if found else error.splitlines()[0]
