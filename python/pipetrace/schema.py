"""The pipeline_steps schema, defined once in ``resources/`` and read by the JVM shim too.

``schema.json`` is a Spark/Delta StructType (column comments in field metadata ``comment``);
``table.json`` holds the table name, schema version, description and table properties.

Example::

    >>> from pipetrace.schema import TABLE_NAME, arrow_schema
    >>> TABLE_NAME, arrow_schema().field("seq").type
    ('pipeline_steps', DataType(int64))
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pyarrow as pa
from deltalake import Schema as DeltaSchema

from pipetrace.errors import SpoolError

__all__ = [
    "SCHEMA_VERSION",
    "TABLE_NAME",
    "arrow_schema",
    "delta_schema",
    "parse_timestamp",
    "rows_to_arrow",
    "table_description",
    "table_properties",
]


@functools.cache
def _resource_text(name: str) -> str:
    return resources.files("pipetrace").joinpath("resources").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def _table_json() -> dict[str, Any]:
    return json.loads(_resource_text("table.json"))


SCHEMA_VERSION: int = int(_table_json()["schema_version"])
TABLE_NAME: str = str(_table_json()["name"])


def table_description() -> str:
    """The table description (``COMMENT``) from ``table.json``.

    Example::

        >>> "one row per Spark action" in table_description()
        True
    """
    return str(_table_json()["description"])


def table_properties() -> dict[str, str]:
    """Delta table properties from ``table.json`` (a fresh dict each call).

    Example::

        >>> table_properties()["delta.appendOnly"]
        'true'
    """
    return {str(k): str(v) for k, v in _table_json()["properties"].items()}


@functools.cache
def delta_schema() -> DeltaSchema:
    """The table schema as a ``deltalake.Schema`` (column comments included).

    Example::

        >>> "operators" in [f.name for f in delta_schema().fields]
        True
    """
    return DeltaSchema.from_json(_resource_text("schema.json"))


@functools.cache
def arrow_schema() -> pa.Schema:
    """The table schema as a ``pyarrow.Schema`` (comments in field metadata).

    Example::

        >>> str(arrow_schema().field("captured_at").type)
        'timestamp[us, tz=UTC]'
    """
    return pa.schema(delta_schema().to_arrow())


# ISO-8601 with a mandatory zone; any number of fraction digits (the JVM may write nanos).
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})\Z"
)


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp with a zone into an aware UTC datetime (microseconds).

    Example::

        >>> parse_timestamp("2026-11-25T03:35:11.123456789Z").isoformat()
        '2026-11-25T03:35:11.123456+00:00'
    """
    match = _TIMESTAMP.match(text)
    if match is None:
        raise ValueError(f"not an ISO-8601 UTC timestamp: {text!r}")
    date, time, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    base = datetime.fromisoformat(f"{date}T{time}").replace(microsecond=micros)
    if zone == "Z":
        offset = timedelta(0)
    else:
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    return base.replace(tzinfo=timezone(offset)).astimezone(timezone.utc)


def _bad(path: str, expected: str, value: object) -> SpoolError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return SpoolError(f"field {path!r}: expected {expected}, got {shown}")


def _coerce(value: object, dtype: pa.DataType, nullable: bool, path: str) -> object:
    """Check one JSON value against an Arrow type; return what pyarrow accepts for it."""
    if value is None:
        if not nullable:
            raise SpoolError(f"field {path!r}: required but missing or null")
        return None
    if pa.types.is_integer(dtype):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(path, str(dtype), value)
        limit = 1 << (dtype.bit_width - 1)
        if not -limit <= value < limit:
            raise _bad(path, f"{dtype} in range", value)
        return value
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        if not isinstance(value, str):
            raise _bad(path, "a string", value)
        return value
    if pa.types.is_boolean(dtype):
        if not isinstance(value, bool):
            raise _bad(path, "true or false", value)
        return value
    if pa.types.is_floating(dtype):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _bad(path, "a number", value)
        return float(value)
    if pa.types.is_timestamp(dtype):
        if not isinstance(value, str):
            raise _bad(path, "an ISO-8601 UTC timestamp string", value)
        try:
            return parse_timestamp(value)
        except ValueError:
            raise _bad(path, "an ISO-8601 UTC timestamp string", value) from None
    if pa.types.is_struct(dtype):
        if not isinstance(value, dict):
            raise _bad(path, "an object", value)
        return _coerce_fields(value, list(dtype), path)
    if pa.types.is_map(dtype):
        if not isinstance(value, dict):
            raise _bad(path, "an object (map)", value)
        item = dtype.item_field
        return [(k, _coerce(v, item.type, item.nullable, f"{path}.{k}")) for k, v in value.items()]
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        if not isinstance(value, list):
            raise _bad(path, "an array", value)
        elem = dtype.value_field
        return [_coerce(v, elem.type, elem.nullable, f"{path}[{i}]") for i, v in enumerate(value)]
    raise SpoolError(f"field {path!r}: pipetrace cannot read Arrow type {dtype}; upgrade pipetrace")


def _coerce_fields(obj: dict[str, Any], fields: list[pa.Field], prefix: str) -> dict[str, object]:
    known = {f.name for f in fields}
    unknown = sorted(set(obj) - known)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise SpoolError(
            f"unknown field {where}{unknown[0]!r}: the step was written by a newer schema; "
            "upgrade pipetrace (pip install -U pipetrace)"
        )
    out: dict[str, object] = {}
    for field in fields:
        path = f"{prefix}.{field.name}" if prefix else field.name
        out[field.name] = _coerce(obj.get(field.name), field.type, field.nullable, path)
    return out


def rows_to_arrow(rows: list[dict[str, Any]], *, schema: pa.Schema | None = None) -> pa.Table:
    """Convert step objects (parsed spool JSON lines) into an Arrow table of the schema
    (``schema``: another table's, e.g. pipeline_runs').

    Missing keys become null; ISO timestamps become UTC timestamps; maps are JSON objects.
    A row that does not fit raises :class:`SpoolError` naming the row and the field.

    Example::

        >>> t = rows_to_arrow([{"schema_version": 1, "event_id": "e1", "run_id": "r1",
        ...                     "seq": 1, "captured_at": "2026-11-25T03:35:11Z"}])
        >>> t.num_rows, t.column("action")[0].as_py()
        (1, None)
    """
    schema = schema if schema is not None else arrow_schema()
    fields = list(schema)
    checked = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise SpoolError(f"row {index + 1}: expected a JSON object, got {type(row).__name__}")
        try:
            checked.append(_coerce_fields(row, fields, ""))
        except SpoolError as exc:
            raise SpoolError(f"row {index + 1}: {exc}") from None
    try:
        return pa.Table.from_pylist(checked, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # defensive: _coerce should catch all
        raise SpoolError(f"rows do not fit the table's schema: {exc}") from exc
