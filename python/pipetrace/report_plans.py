"""The report's plans section: each distinct plan once, by fingerprint, with expression ids
removed; a plan that differs from one stored before only by literals is stored as those
literals, another near twin as a line diff, so a loop over values stays small.

Example::

    >>> from pipetrace.report_plans import plan_key
    >>> plan_key({"seq": 3, "plan_fingerprint": None})
    'seq-3'
"""

from __future__ import annotations

import difflib
import html
import re
from typing import Any

from pipetrace import report_model as rm

__all__ = ["plan_key", "section"]


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def plan_key(row: dict[str, Any]) -> str:
    """A step's plan's anchor: its fingerprint (a step without one is its own plan)."""
    return str(row.get("plan_fingerprint") or f"seq-{row['seq']}")


def _plan_text(row: dict[str, Any]) -> str:
    return "\n".join(f"== {name} ==\n{normal}" for name, normal in (
        (n, rm.normalize_plan(row.get(c))) for n, c in (
            ("analyzed", "logical_plan"), ("optimized", "optimized_plan"),
            ("physical", "physical_plan"))) if normal)


_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|(?<![\w#.])-?\d+(?:\.\d+)?(?:[eE]-?\d+)?[LDSYF]?(?![\w.])")


def _literal_changes(old: str, new: str) -> list[tuple[str, str]] | None:
    """The literals that differ between two plan texts that are otherwise equal (a loop over
    values), in order, each pair once; None when anything else differs.

    Example::

        >>> _literal_changes("Filter (v > 0) AND (c = 'a')", "Filter (v > 1) AND (c = 'a')")
        [('0', '1')]
        >>> _literal_changes("Filter (v > 0)", "Filter (w > 0)") is None
        True
    """
    if _LITERAL.sub("?", old) != _LITERAL.sub("?", new):
        return None
    pairs = [(a, b) for a, b in zip(_LITERAL.findall(old), _LITERAL.findall(new), strict=True)
             if a != b]
    return list(dict.fromkeys(pairs))


def section(rows: list[dict[str, Any]], groups: list[rm.Group]) -> str:
    """Each distinct plan once, by fingerprint. A plan is stored as a diff against a plan
    stored in full before it (its loop's first plan, else the last one stored) when that diff
    is under half its size: a loop over literals, or steps that extend the same DataFrame,
    stay small."""
    stored: dict[str, str] = {}
    texts: dict[str, str] = {}
    users: dict[str, list[int]] = {}
    for r in rows:
        users.setdefault(plan_key(r), []).append(r["seq"])
    # The last plans stored in full per shape (action and root operators): likely near twins.
    last: dict[tuple[Any, ...], list[str]] = {}
    for group in groups:
        base: str | None = None
        for row in group.steps:
            key = plan_key(row)
            if key in stored:
                base = base or (key if key in texts else None)
                continue
            text = _plan_text(row)
            seqs = users[key]
            used = (f"step {seqs[0]}" if len(seqs) == 1 else
                    f"steps {', '.join(map(str, seqs[:10]))}" + (" …" if len(seqs) > 10 else "")
                    + f" ({len(seqs)} steps)")
            best: tuple[str, str] | None = None
            shape = (row.get("action"), *(line.strip()[:40] for line in
                                          rm.normalize_plan(row.get("physical_plan")).splitlines()[:3]))
            candidates = list(dict.fromkeys(c for c in (base, *last.get(shape, [])[-6:])
                                            if c is not None))
            for candidate in candidates:  # a loop over values: only literals differ
                changed = _literal_changes(texts[candidate], text)
                if changed is not None:
                    best = (candidate, "literals: " + ", ".join(f"{x} → {y}" for x, y in changed))
                    break
            for candidate in candidates if best is None else []:
                delta = "\n".join(difflib.unified_diff(texts[candidate].splitlines(),
                                                       text.splitlines(), lineterm="", n=0))
                if len(delta) < len(text) // 2 and (best is None or len(delta) < len(best[1])):
                    best = (candidate, delta)
            if best is not None:
                stored[key] = (f"<details id='plan-{_e(key)}'><summary>plan {_e(key[:12])} "
                               f"({used}): as plan <a href='#plan-{_e(best[0])}'>"
                               f"{_e(best[0][:12])}</a> except</summary><pre>{_e(best[1])}</pre>"
                               "</details>")
                continue
            texts[key] = text
            stored[key] = (f"<details id='plan-{_e(key)}'><summary>plan {_e(key[:12])} ({used})"
                           f"</summary><pre>{_e(text) or 'no plan text recorded'}</pre></details>")
            base = base or key
            last.setdefault(shape, []).append(key)
    return ("<h2 id='plans'>Plans</h2><p class='muted'>each distinct plan once (by its "
            "fingerprint), expression ids removed.</p>" + "".join(stored.values()))
