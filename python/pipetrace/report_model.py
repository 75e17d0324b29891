"""What a run report says, computed from a run's rows: the facts both renderers (HTML and
Markdown) and the diff share, with no formatting in them.

Every function takes step rows as plain Python dicts (one ``pipeline_steps`` row each, as
``pyarrow.Table.to_pylist`` gives them) and tolerates rows of older schema versions: a column a
row does not have is treated as null.

Example::

    >>> rows = [{"seq": 1, "action": "write", "output": {"kind": "path", "name": "/o"}},
    ...         {"seq": 2, "action": "count", "inputs": [{"kind": "path", "name": "/o"}]}]
    >>> edges(rows)
    [(1, 2, '/o')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Failure",
    "Group",
    "Upstream",
    "dataset_key",
    "edges",
    "external_inputs",
    "failures",
    "groups",
    "identity",
    "input_datasets",
    "normalize_plan",
    "output_datasets",
    "short_name",
]

# Expression ids (age#12L), plan ids ([plan_id=35]) and object hashes differ between runs of the
# same code: removed before two plans are compared or deduplicated.
_EXPR_ID = re.compile(r"#\d+L?\b")
_PLAN_ID = re.compile(r"\[plan_id=\d+\]|plan_id=\d+")
_HASH = re.compile(r"@[0-9a-f]{6,}\b")


def normalize_plan(text: str | None) -> str:
    """A plan text without what changes between runs of the same code (expression and plan ids).

    Example::

        >>> normalize_plan("Filter (age#12L >= 18)\\n+- Exchange [plan_id=7]")
        'Filter (age >= 18)\\n+- Exchange'
    """
    if not text:
        return ""
    out = _PLAN_ID.sub("", _HASH.sub("", _EXPR_ID.sub("", text)))
    return "\n".join(line.rstrip() for line in out.splitlines())


def dataset_key(entry: dict[str, Any] | None) -> str | None:
    """The one name under which a read and a write of the same data meet: the qualified storage
    path where recorded (schema 4+), else the table name or path as recorded."""
    if not entry:
        return None
    return entry.get("path") or entry.get("name")


def short_name(entry: dict[str, Any] | None) -> str:
    """A dataset's last name part (``schema.table`` or the file/folder name) for labels."""
    if not entry or not entry.get("name"):
        return str((entry or {}).get("kind") or "?")
    name = str(entry["name"])
    if entry.get("kind") == "table":
        return ".".join(name.split(".")[-2:])
    return name.rstrip("/").rsplit("/", 1)[-1] or name


def identity(entry: dict[str, Any]) -> str | None:
    """What identifies the data an input had: its Delta version, else the fingerprint of its
    files (the ``inputs_identity`` audit query's rule); None when neither was recorded.

    Example::

        >>> identity({"version": 3}), identity({"fingerprint": "ab12"}), identity({})
        ('version 3', 'sha256 ab12', None)
    """
    if entry.get("version") is not None:
        return f"version {entry['version']}"
    if entry.get("fingerprint"):
        return f"sha256 {entry['fingerprint']}"
    return None


def _list(value: Any) -> list[Any]:
    return list(value) if value is not None else []


def edges(rows: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(writer seq, reader seq, dataset key): a step reads what an earlier step of the run wrote
    (the latest such write before it; a failed write wrote nothing usable but is still linked,
    since the reader read whatever the location then held)."""
    last_writer: dict[str, int] = {}
    found: dict[tuple[int, int, str], None] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        for entry in _list(row.get("inputs")):
            key = dataset_key(entry)
            if key in last_writer and last_writer[key] != row["seq"]:
                found[(last_writer[key], row["seq"], key)] = None
        out_key = dataset_key(row.get("output"))
        if out_key:
            last_writer[out_key] = row["seq"]
    return list(found)


def _written_before(rows: list[dict[str, Any]]) -> dict[int, frozenset[str]]:
    """Per seq, the dataset keys an earlier step of the run wrote."""
    seen: frozenset[str] = frozenset()
    before: dict[int, frozenset[str]] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        before[row["seq"]] = seen
        key = dataset_key(row.get("output"))
        if key and key not in seen:
            seen = seen | {key}
    return before


def external_inputs(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Each (input entry, seq) the run read that no earlier step of the run wrote: the data the
    run started from, as opposed to its own intermediate results."""
    before = _written_before(rows)
    return [(entry, row["seq"]) for row in sorted(rows, key=lambda r: r["seq"])
            for entry in _list(row.get("inputs"))
            if dataset_key(entry) not in before[row["seq"]]]


def input_datasets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's inputs, one entry per (dataset, identity): kind, name, format, identity, files,
    bytes, modified, which steps read it, and whether an earlier step of the run wrote it."""
    before = _written_before(rows)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        for entry in _list(row.get("inputs")):
            key = dataset_key(entry)
            ident = identity(entry)
            item = found.setdefault((key, ident, entry.get("kind")), {
                "key": key, "kind": entry.get("kind"), "name": entry.get("name"),
                "format": entry.get("format"), "identity": ident,
                "version": entry.get("version"), "files": entry.get("files"),
                "bytes": entry.get("bytes"), "modified_max": entry.get("modified_max"),
                "fingerprint": entry.get("fingerprint"), "steps": [],
                "written_by_run": key in before[row["seq"]]})
            if row["seq"] not in item["steps"]:
                item["steps"].append(row["seq"])
    return list(found.values())


def output_datasets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every write of the run in order: dataset, how, rows written, version, status."""
    outs = []
    for row in sorted(rows, key=lambda r: r["seq"]):
        out = row.get("output")
        if not out:
            continue
        outs.append({"seq": row["seq"], "key": dataset_key(out), "kind": out.get("kind"),
                     "name": out.get("name"), "format": out.get("format"),
                     "mode": out.get("mode"), "version": out.get("version"),
                     "operation": out.get("operation"), "rows": row.get("rows_out"),
                     "status": row.get("status"), "schema": row.get("output_schema")})
    return outs


class Upstream:
    """Which external inputs each step of a run depends on, directly or through what earlier
    steps of the run wrote and it read (computed once per run).

    Example::

        >>> rows = [{"seq": 1, "inputs": [{"name": "/in"}], "output": {"name": "/o"}},
        ...         {"seq": 2, "inputs": [{"name": "/o"}]}]
        >>> [e["name"] for e in Upstream(rows).of(2)]
        ['/in']
    """

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._by_seq = {r["seq"]: r for r in rows}
        self._writers: dict[int, list[int]] = {}
        for a, b, _key in edges(rows):
            self._writers.setdefault(b, []).append(a)
        self._before = _written_before(rows)

    def of(self, seq: int) -> list[dict[str, Any]]:
        todo, seen, found = [seq], set(), []
        while todo:
            current = todo.pop()
            if current in seen or current not in self._by_seq:
                continue
            seen.add(current)
            for entry in _list(self._by_seq[current].get("inputs")):
                if dataset_key(entry) not in self._before[current]:
                    found.append(entry)
            todo.extend(self._writers.get(current, []))
        return found


@dataclass
class Group:
    """The steps one line of the agent's code ran with one action and status inside a loop
    (consecutive, or at the same place of each pass of a loop body): one node, detailed once."""

    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def first(self) -> dict[str, Any]:
        return self.steps[0]

    @property
    def seqs(self) -> list[int]:
        return [s["seq"] for s in self.steps]

    @property
    def label(self) -> str:
        seqs = self.seqs
        if len(seqs) == 1:
            return str(seqs[0])
        if seqs[-1] - seqs[0] == len(seqs) - 1:
            return f"{seqs[0]}–{seqs[-1]}"
        return f"{seqs[0]}, {seqs[1]}, … {seqs[-1]}"


def _group_key(row: dict[str, Any]) -> tuple[Any, ...] | None:
    if not row.get("call_site"):
        return None  # without the agent's line, two steps are not known to be one line's
    return (row.get("call_site"), row.get("action") or row.get("spark_func"), row.get("status"),
            row.get("parent_event_id") is not None)


def groups(rows: Iterable[dict[str, Any]], *, min_repeats: int = 3,
           max_period: int = 50) -> list[Group]:
    """Steps in seq order, with loops folded: where a sequence of ``p`` steps (p <= max_period)
    repeats ``min_repeats`` times or more with the same call sites, actions and statuses, the
    steps at each place of the loop body are one group (p groups, each of one step per pass).
    A failed pass breaks the pattern, so failures stay visible as their own node.

    Example::

        >>> rows = [{"seq": i, "call_site": f"j.py:{10 + i % 2}", "action": "count"}
        ...         for i in range(1, 7)] + [{"seq": 7, "call_site": "j.py:20", "action": "show"}]
        >>> [g.seqs for g in groups(rows)]
        [[1, 3, 5], [2, 4, 6], [7]]
    """
    ordered = sorted(rows, key=lambda r: r["seq"])
    keys = [_group_key(r) for r in ordered]
    out: list[Group] = []
    i, n = 0, len(ordered)
    while i < n:
        best = (1, 1)  # (repeats, period)
        if keys[i] is not None:
            for period in range(1, min(max_period, (n - i) // min_repeats) + 1):
                body = keys[i:i + period]
                if None in body:
                    break
                repeats = 1
                while keys[i + repeats * period:i + (repeats + 1) * period] == body:
                    repeats += 1
                if repeats >= min_repeats and repeats * period > best[0] * best[1]:
                    best = (repeats, period)
        repeats, period = best
        if repeats == 1:
            out.append(Group([ordered[i]]))
            i += 1
            continue
        out.extend(Group([ordered[i + k * period + j] for k in range(repeats)])
                   for j in range(period))
        i += repeats * period
    return out


@dataclass
class Failure:
    """A failed step, what ran right after it, and every step where the same failure happened
    again (same line, same error, same next line: a loop)."""

    step: dict[str, Any]
    next: dict[str, Any] | None
    seqs: list[int]


def failures(rows: list[dict[str, Any]], summary: Any = None) -> list[Failure]:
    """The run's failures in order, each repeated failure once; ``summary`` turns an error text
    into the part that identifies it (default: the whole text).

    Example::

        >>> rows = [{"seq": 1, "status": "FAILED", "call_site": "j.py:3", "error": "E"},
        ...         {"seq": 2, "status": "SUCCEEDED", "call_site": "j.py:5"}]
        >>> [(f.step["seq"], f.next["seq"], f.seqs) for f in failures(rows + [
        ...     {**rows[0], "seq": 3}, {**rows[1], "seq": 4}])]
        [(1, 2, [1, 3])]
    """
    ordered = sorted(rows, key=lambda r: r["seq"])
    found: dict[tuple[Any, ...], Failure] = {}
    for i, row in enumerate(ordered):
        if row.get("status") != "FAILED":
            continue
        nxt = ordered[i + 1] if i + 1 < len(ordered) else None
        error = str(row.get("error") or "")
        key = (row.get("call_site") or row["seq"], summary(error) if summary and error else error,
               nxt and (nxt.get("call_site"), nxt.get("status")))
        if key in found:
            found[key].seqs.append(row["seq"])
        else:
            found[key] = Failure(row, nxt, [row["seq"]])
    return list(found.values())
