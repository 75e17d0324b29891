"""Tamper evidence: recompute each row's hash, the chain of every run, and its anchors.

Each step carries ``row_hash`` and ``prev_hash`` (the ``row_hash`` of the previous step of its
run), computed by the listener when it captured the step. ``row_hash`` is HMAC-SHA256 of a
canonical encoding of all the row's other columns when the run was captured with a key
(:mod:`pipetrace.keys`), else its plain SHA-256. Editing a row changes its hash; deleting or
reordering rows breaks the chain or the ``seq`` sequence; every commit of a run also recorded
its last seq and row_hash in the Delta log (:mod:`pipetrace.anchors`), so deleting a run's last
rows or the whole run shows too. This holds even if someone turned ``delta.appendOnly`` off.

Without the key, anyone who can write the table can recompute plain hashes after an edit: then
only the anchors stand in the way, and they go with the Delta log (expired, or cleaned up by
someone who can change the table's properties). With the key, an edited or forged row cannot
be given a hash that verifies. The README's "Secrets and tamper evidence" says what each
catches and what none does.

The encoding (shared with jvm_shim's Canonical.java, byte for byte): null ``n``; boolean
``t``/``f``; integer and timestamp (epoch microseconds) ``i<decimal>;``; string
``s<utf-8 length>:<utf-8 bytes>``; array ``[..]``; map ``{..}`` sorted by the UTF-8 key bytes;
struct ``(..)`` in schema order; a row is the struct of every column but ``row_hash``.

Example::

    >>> report = verify(table="/tmp/pipeline_steps", key=load_key())   # doctest: +SKIP
    >>> report.ok, report.rows  # doctest: +SKIP
    (True, 12)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from pipetrace.anchors import Anchor, read_anchors
from pipetrace.keys import ENV_VAR, key_id, load_key, mac
from pipetrace.locations import resolve_table
from pipetrace.query import open_table, sql
from pipetrace.schema import delta_schema

__all__ = ["Break", "VerifyReport", "load_key", "row_hash", "verify"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Break:
    """The first place where a run's evidence does not hold (``seq`` None: the run as a whole)."""

    run_id: str
    seq: int | None
    reason: str


@dataclass
class VerifyReport:
    """What :func:`verify` checked, and the first break of each broken run."""

    table: str
    key_id: str | None = None  # id of the key the rows were checked with; None: without a key
    runs: int = 0
    rows: int = 0
    breaks: list[Break] = field(default_factory=list)
    # Runs captured with a key, checked without one: nothing can be said about them.
    unchecked: list[Break] = field(default_factory=list)
    # Runs no anchor in the Delta log speaks for: their last rows, or all, could go unnoticed.
    unanchored: list[str] = field(default_factory=list)
    log_start: int | None = None  # first Delta version still in the log

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.unchecked


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


def _key_problem(run_id: str, anchors: list[Anchor], key: bytes | None
                 ) -> tuple[str, Break] | None:
    """Whether the run's commits say it was hashed with another key than the one given."""
    named = {a.key_id for a in anchors}
    keyed = sorted(k for k in named if k is not None)
    if key is None:
        if keyed:
            return "unchecked", Break(run_id, None, f"captured with key id {keyed[0]}: verify "
                                      f"it with that key (${ENV_VAR} or --key-file)")
        return None
    mine = key_id(key)
    if not named or mine in named:
        return None
    if not keyed:
        return "broken", Break(run_id, None, "captured without a key (its commits name none): "
                               "anyone can recompute its hashes, so no key can vouch for it; "
                               "verify it without a key to check it for accidental edits")
    return "broken", Break(run_id, None, f"captured with key id {keyed[0]}, but the key given "
                           f"has id {mine}: wrong key; verify with the key of {keyed[0]} "
                           f"(${ENV_VAR} or --key-file)")


def _content_reason(row: dict[str, Any], schema: dict[str, Any], key: bytes | None,
                    anchored: bool) -> str:
    if key is not None and row_hash(row, schema) == row["row_hash"]:
        return ("row_hash is a plain SHA-256, not an HMAC with the key: the row was rewritten "
                "with the public verify.row_hash, or captured without a key")
    if key is not None:
        return ("the row was edited: its content does not match row_hash under the key"
                + ("" if anchored else " (or it was hashed with another key)"))
    return ("the row was edited: its content does not match row_hash"
            + ("" if anchored else f" (or it was hashed with a key: verify with ${ENV_VAR})"))


def _check_chain(run_id: str, rows: list[dict[str, Any]], schema: dict[str, Any],
                 key: bytes | None, anchored: bool) -> Break | None:
    previous: str | None = None
    for expected, row in enumerate(rows, start=1):
        seq = row["seq"]
        if seq != expected:
            what = "duplicated" if seq < expected else f"seq {expected} is missing (deleted?)"
            return Break(run_id, seq if seq < expected else expected,
                         f"seq {seq} is {what}" if seq < expected else what)
        if row["row_hash"] is None:
            return Break(run_id, seq, "the row has no row_hash")
        if row_hash(row, schema, key) != row["row_hash"]:
            return Break(run_id, seq, _content_reason(row, schema, key, anchored))
        if row["prev_hash"] != previous:
            return Break(run_id, seq, "prev_hash does not match the previous row's row_hash "
                         "(rows deleted, reordered or moved between runs)")
        previous = row["row_hash"]
    return None


def _check_anchors(run_id: str, rows: list[dict[str, Any]], anchors: list[Anchor]
                   ) -> Break | None:
    """Every commit's record of the run must still hold: its last seq is there, same hash."""
    hashes = {row["seq"]: row["row_hash"] for row in rows}
    last = max(hashes, default=0)
    for anchor in anchors:
        if anchor.seq > last:
            what = (f"seq {anchor.seq} is" if anchor.seq == last + 1
                    else f"seq {last + 1} to {anchor.seq} are")
            return Break(run_id, last + 1, f"{what} missing, though Delta version "
                         f"{anchor.version} recorded seq {anchor.seq} as committed: the run's "
                         "last rows were deleted")
        if hashes.get(anchor.seq) != anchor.row_hash:
            return Break(run_id, anchor.seq, "row_hash differs from the one Delta version "
                         f"{anchor.version} recorded when it committed the row: the run was "
                         "rewritten")
    return None


def verify(run_id: str | None = None, *, table: str | None = None,
           key: bytes | None = None) -> VerifyReport:
    """Check every run (or one) of the table; the report names the first break per run.

    ``key`` is the key the runs were captured with (:func:`load_key` reads it from
    ``$PIPETRACE_HMAC_KEY`` or a file); without it, keyed runs are reported as unchecked and
    unkeyed ones are checked only against accidental and naive edits.

    Example::

        >>> verify("20261125-035123-a08d0d", table="/tmp/pipeline_steps").ok  # doctest: +SKIP
        True
    """
    schema = json.loads(delta_schema().to_json())
    # Anchors first: rows read afterwards are at least as new as every commit they name.
    anchors, first = read_anchors(open_table(table))
    where = ""
    if run_id is not None:
        where = "WHERE run_id = '" + run_id.replace("'", "''") + "'"
        anchors = {run_id: anchors[run_id]} if run_id in anchors else {}
    result: pa.Table = sql(f"SELECT * FROM pipeline_steps {where} ORDER BY run_id, seq",
                           table=table)
    report = VerifyReport(table=resolve_table(table), log_start=first,
                          key_id=key_id(key) if key is not None else None)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in result.to_pylist():
        by_run.setdefault(row["run_id"], []).append(row)
    for rid, rows in by_run.items():
        report.runs += 1
        report.rows += len(rows)
        ours = anchors.get(rid, [])
        if not ours:
            report.unanchored.append(rid)
        problem = _key_problem(rid, ours, key)
        if problem is not None:
            (report.unchecked if problem[0] == "unchecked" else report.breaks).append(problem[1])
            continue
        broken = _check_chain(rid, rows, schema, key, bool(ours)) or _check_anchors(rid, rows, ours)
        if broken is not None:
            report.breaks.append(broken)
    for rid in sorted(set(anchors) - set(by_run)):
        report.runs += 1
        last = anchors[rid][-1]
        report.breaks.append(Break(rid, None, f"no rows, though Delta version {last.version} "
                                   f"recorded {last.seq} committed step(s): the run was deleted"))
    return report
