"""The row flow of a step: how many rows went into and out of each filter, join, dedup and
aggregate the agent wrote, read from ``logical_steps`` and the operators they became.

Counts follow the table's rule, a number is true or null: a measured step's own rows
(``exact``), else the rows of the one physical operator planned from it, never an operator's
rows for a step the optimizer merged with another.

Example::

    >>> row = {"seq": 1, "rows_out": 8, "logical_steps": [
    ...     {"id": 1, "kind": "filter", "description": "(a#1 > 2)", "operator_ids": [1]}],
    ...     "operators": [{"id": 0, "name": "Project", "rows_in": [8], "rows_out": 8},
    ...                   {"id": 1, "parent_id": 0, "name": "Filter", "rows_in": [10], "rows_out": 8}]}
    >>> [(r.description, r.rows_in, r.rows_out, r.basis) for r in funnel(row).rows]
    [('(a > 2)', 10, 8, 'operator')]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from pipetrace.report_model import normalize_plan

__all__ = ["Funnel", "FunnelRow", "funnel"]


def _list(value: Any) -> list[Any]:
    return list(value) if value is not None else []


@dataclass
class FunnelRow:
    """One agent-written transformation in a step's row flow."""

    kind: str
    description: str
    source: str | None
    rows_in: int | None
    rows_out: int | None
    # "exact": the condition's own rows (measured); "operator": the rows of the physical
    # operator planned from it (may also evaluate conditions the optimizer added, e.g.
    # isnotnull); None: no count shown (merged, or not known), with ``note`` saying why.
    basis: str | None
    note: str | None = None
    multiplies: bool = False
    inputs: list[int | None] = field(default_factory=list)

    @property
    def dropped(self) -> int | None:
        if self.rows_in is None or self.rows_out is None:
            return None
        return self.rows_in - self.rows_out

    @property
    def share_dropped(self) -> float | None:
        if self.rows_in in (None, 0) or self.rows_out is None:
            return None
        return 1 - self.rows_out / self.rows_in


@dataclass
class Funnel:
    """A step's row flow: rows read per input, each transformation, rows out."""

    seq: int
    reads: list[tuple[str, int | None]]
    rows: list[FunnelRow]
    rows_out: int | None


_KIND_OPERATORS = {"filter": ("Filter",), "join": ("Join", "CartesianProduct", "NestedLoop"),
                   "dedup": ("Aggregate", "Deduplicate"), "aggregate": ("Aggregate",)}
_FUNNEL_KINDS = ("filter", "join", "dedup", "aggregate")
_SCAN = re.compile(r"^(Scan|BatchScan|FileScan|InMemoryTableScan|LocalTableScan|Range)")


def _count(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _operator_rows(mine: list[dict[str, Any]], kind: str, by_id: dict[Any, dict[str, Any]]
                   ) -> tuple[int | None, list[int | None], int | None, str | None]:
    """rows_in (summed; a join's: its left input), rows_in per input, rows_out of the
    operators a logical step became: the lowest one's input and the highest one's output (a
    partial and a final aggregate, with an exchange between them)."""
    wanted = [o for o in mine if any(w in str(o.get("name")) for w in _KIND_OPERATORS[kind])]
    if not wanted:
        return None, [], None, "no physical operator of its own (evaluated inside the scan)"

    def ancestors(op: dict[str, Any]) -> set[Any]:
        found, parent = set(), op.get("parent_id")
        while parent is not None and parent in by_id and parent not in found:
            found.add(parent)
            parent = by_id[parent].get("parent_id")
        return found

    ids = {o.get("id") for o in wanted}
    top = [o for o in wanted if not (ancestors(o) & ids)]
    bottom = [o for o in wanted if not any(o.get("id") in ancestors(p) for p in wanted)]
    if len(top) != 1 or len(bottom) != 1:
        return None, [], None, "planned as several operators: no one count is the step's"
    ins = [_count(v) for v in _list(bottom[0].get("rows_in"))]
    total = None if not ins or any(v is None for v in ins) else sum(v for v in ins if v is not None)
    if kind == "join":
        total = ins[0] if ins else None
    return total, ins, _count(top[0].get("rows_out")), None


def _scan_label(op: dict[str, Any], inputs: list[dict[str, Any]]) -> str:
    """The input a scan operator reads, by the name ``inputs`` gives it when the scan's
    description shows its location or table; else the description's start."""
    text = str(op.get("description") or op.get("name") or "scan")
    for entry in inputs:
        for candidate in (entry.get("path"), entry.get("name")):
            if candidate and (candidate in text or candidate.replace("file:", "") in text):
                return str(entry.get("name"))
    return normalize_plan(text)[:120]


def funnel(row: dict[str, Any]) -> Funnel | None:
    """The row flow of one step through the filters, joins, dedups and aggregates the agent
    wrote (``logical_steps``), in the order the code wrote them; None when it has none.

    Counts follow the table's rule, a number is true or null: a measured step's own rows
    (``exact``); else the rows of the one physical operator planned from it; never an operator's
    rows for a step that the optimizer merged with another (``merged``). A join's ``rows_in`` is
    its left input, and it is flagged when it returns more rows than either input had.
    For rows of schema 1-2 (no ``logical_steps``) the operators that carry the agent's
    ``source`` line stand in (the ``attrition`` audit query's view).
    """
    ops = [o for o in _list(row.get("operators")) if o]
    by_id = {o.get("id"): o for o in ops}
    reads = [(_scan_label(o, _list(row.get("inputs"))), _count(o.get("rows_out")))
             for o in ops if _SCAN.match(str(o.get("name") or ""))]
    rows: list[FunnelRow] = []
    logical = [s for s in _list(row.get("logical_steps")) if s and s.get("kind") in _FUNNEL_KINDS]
    if row.get("logical_steps") is not None:
        for step in sorted(logical, key=lambda s: s.get("id") or 0):
            kind = str(step["kind"])
            mine = [by_id[i] for i in _list(step.get("operator_ids")) if i in by_id]
            entry = FunnelRow(kind=kind, description=normalize_plan(step.get("description")),
                              source=step.get("source"), rows_in=None, rows_out=None, basis=None)
            if step.get("exact"):
                entry.rows_in, entry.rows_out = _count(step.get("rows_in")), _count(step.get("rows_out"))
                entry.basis = "exact"
            elif step.get("merged"):
                others = ", ".join(str(m) for m in _list(step.get("merged_with")))
                entry.note = (f"merged by the optimizer with step(s) {others}" if others else
                              "merged by the optimizer with another step") + \
                    ": no count is this condition's alone"
            else:
                total, ins, out, why = _operator_rows(mine, kind, by_id)
                entry.rows_in, entry.rows_out, entry.inputs = total, out, ins
                entry.basis = "operator" if out is not None else None
                entry.note = why or (None if out is not None else step.get("rows_unknown"))
            if kind == "join" and entry.rows_out is not None and entry.inputs and all(
                    v is not None for v in entry.inputs):
                entry.multiplies = entry.rows_out > max(v for v in entry.inputs if v is not None)
            rows.append(entry)
    else:
        for op in reversed(ops):  # operators are listed root first: the flow reads bottom up
            name = str(op.get("name") or "")
            kind = next((k for k in ("filter", "join", "aggregate")
                         if any(w in name for w in _KIND_OPERATORS[k])), None)
            if not op.get("source") or kind is None:
                continue
            ins = [_count(v) for v in _list(op.get("rows_in"))]
            total = None if not ins or None in ins else (ins[0] if kind == "join" else sum(
                v for v in ins if v is not None))
            out = _count(op.get("rows_out"))
            rows.append(FunnelRow(kind=kind, description=normalize_plan(op.get("description") or name),
                                  source=op.get("source"), rows_in=total, rows_out=out,
                                  basis="operator" if out is not None else None, inputs=ins,
                                  multiplies=(kind == "join" and out is not None and bool(ins)
                                              and None not in ins
                                              and out > max(v for v in ins if v is not None))))
    if not rows:
        return None
    return Funnel(seq=row["seq"], reads=reads, rows=rows, rows_out=_count(row.get("rows_out")))
