"""Tamper evidence: recompute each row's hash and the chain of every run.

Each step carries ``row_hash`` (SHA-256 of a canonical encoding of all its other columns) and
``prev_hash`` (the ``row_hash`` of the previous step of its run), computed by the listener when
it captured the step. Editing a row changes its hash; deleting or reordering rows breaks the
chain or the ``seq`` sequence. This holds even if someone turned ``delta.appendOnly`` off.

The encoding (shared with jvm_shim's Canonical.java, byte for byte): null ``n``; boolean
``t``/``f``; integer and timestamp (epoch microseconds) ``i<decimal>;``; string
``s<utf-8 length>:<utf-8 bytes>``; array ``[..]``; map ``{..}`` sorted by the UTF-8 key bytes;
struct ``(..)`` in schema order; a row is the struct of every column but ``row_hash``.

Example::

    >>> report = verify(table="/tmp/pipeline_steps")   # doctest: +SKIP
    >>> report.ok, report.rows  # doctest: +SKIP
    (True, 12)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from pipetrace.keys import mac
from pipetrace.locations import resolve_table
from pipetrace.query import sql
from pipetrace.schema import delta_schema

__all__ = ["Break", "VerifyReport", "row_hash", "verify"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Break:
    """The first row where a run's evidence does not hold."""

    run_id: str
    seq: int
    reason: str


@dataclass
class VerifyReport:
    """What :func:`verify` checked, and the first break of each broken run."""

    table: str
    runs: int = 0
    rows: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


def _fields(dtype: dict[str, Any], version: int) -> list[dict[str, Any]]:
    """The struct's fields that a row of schema ``version`` has (``since`` in field metadata)."""
    return [f for f in dtype["fields"] if (f.get("metadata") or {}).get("since", 1) <= version]


def _encode(out: bytearray, value: Any, dtype: Any, version: int) -> None:
    if value is None:
        out += b"n"
        return
    kind = dtype if isinstance(dtype, str) else dtype["type"]
    if kind == "string":
        raw = str(value).encode()
        out += b"s%d:" % len(raw) + raw
    elif kind == "boolean":
        out += b"t" if value else b"f"
    elif kind == "timestamp":
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        delta = moment - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        out += b"i%d;" % micros
    elif kind in ("integer", "long", "short", "byte"):
        out += b"i%d;" % int(value)
    elif kind == "array":
        out += b"["
        for item in value:
            _encode(out, item, dtype["elementType"], version)
        out += b"]"
    elif kind == "map":
        pairs = value.items() if isinstance(value, dict) else value
        out += b"{"
        for key, item in sorted(pairs, key=lambda kv: str(kv[0]).encode()):
            _encode(out, key, dtype["keyType"], version)
            _encode(out, item, dtype["valueType"], version)
        out += b"}"
    elif kind == "struct":
        out += b"("
        for f in _fields(dtype, version):
            _encode(out, value.get(f["name"]), f["type"], version)
        out += b")"
    else:  # pragma: no cover - the schema has no other types
        raise ValueError(f"cannot encode a {kind} column")


def row_hash(row: dict[str, Any], schema: dict[str, Any], key: bytes | None = None) -> str:
    """Hex hash of a row's canonical encoding (every column but ``row_hash``): HMAC-SHA256
    under ``key`` (the run's key, see :mod:`pipetrace.keys`), or plain SHA-256 without one.

    Example::

        >>> from pipetrace.schema import delta_schema
        >>> import json
        >>> schema = json.loads(delta_schema().to_json())
        >>> row_hash({}, schema) != row_hash({}, schema, b"0123456789abcdef")
        True
    """
    # A row is hashed with the columns of its own schema version: columns added later (read
    # back as null from an evolved table) are not part of an older row's hash.
    version = row.get("schema_version") or 1
    out = bytearray(b"(")
    for f in _fields(schema, version):
        if f["name"] != "row_hash":
            _encode(out, row.get(f["name"]), f["type"], version)
    out += b")"
    return mac(key, bytes(out)) if key is not None else hashlib.sha256(out).hexdigest()


def _check_run(run_id: str, rows: list[dict[str, Any]], schema: dict[str, Any]) -> Break | None:
    previous: str | None = None
    for expected, row in enumerate(rows, start=1):
        seq = row["seq"]
        if seq != expected:
            what = "duplicated" if seq < expected else f"seq {expected} is missing (deleted?)"
            return Break(run_id, seq if seq < expected else expected,
                         f"seq {seq} is {what}" if seq < expected else what)
        if row["row_hash"] is None:
            return Break(run_id, seq, "the row has no row_hash")
        if row_hash(row, schema) != row["row_hash"]:
            return Break(run_id, seq, "the row was edited: its content does not match row_hash")
        if row["prev_hash"] != previous:
            return Break(run_id, seq, "prev_hash does not match the previous row's row_hash "
                         "(rows deleted, reordered or moved between runs)")
        previous = row["row_hash"]
    return None


def verify(run_id: str | None = None, *, table: str | None = None) -> VerifyReport:
    """Check every run (or one) of the table; the report names the first broken row per run.

    Example::

        >>> verify("20261125-035123-a08d0d", table="/tmp/pipeline_steps").ok  # doctest: +SKIP
        True
    """
    import json

    schema = json.loads(delta_schema().to_json())
    where = ""
    if run_id is not None:
        where = "WHERE run_id = '" + run_id.replace("'", "''") + "'"
    result: pa.Table = sql(f"SELECT * FROM pipeline_steps {where} ORDER BY run_id, seq",
                           table=table)
    report = VerifyReport(table=resolve_table(table))
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in result.to_pylist():
        by_run.setdefault(row["run_id"], []).append(row)
    for rid, rows in by_run.items():
        report.runs += 1
        report.rows += len(rows)
        broken = _check_run(rid, rows, schema)
        if broken is not None:
            report.breaks.append(broken)
    return report
