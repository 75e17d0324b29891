"""``pipetrace diff``: two runs aligned step by step, and what changed between them.

Steps are aligned by what they are, not by ``seq``: a sequence alignment (difflib's matcher)
first on (call site, action, plan fingerprint), then, inside what is left between two anchors,
on (call site, action) — the same line whose plan changed — and last on (action, fingerprint) —
the same plan run from a line that moved. Whatever stays unpaired was added or removed, so a run
with an extra step still aligns around it.

For each pair: the plan change (the changed conditions, and a unified diff of the analyzed
plans with expression ids removed), the rows out and the rows of each checked operator (the
agent's own operators and the scans) with the ratio, the status. For the runs: inputs whose
identity (Delta version or file fingerprint) changed, outputs whose content changed (rows,
schema, the plan that wrote them, or an input they were computed from), and the run records'
differences (script hash, arguments, versions, settings).

Example::

    >>> import pipetrace
    >>> frame = pipetrace.diff("run-a", "run-b")                    # doctest: +SKIP
    >>> frame[frame.change != "same"][["seq_a", "seq_b", "change", "changes"]]  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import html
from collections.abc import Callable
from typing import Any

import pandas as pd

from pipetrace import report_model as rm
from pipetrace.run_data import load_run

__all__ = ["align", "compare", "diff", "to_frame", "to_html", "to_markdown"]

Row = dict[str, Any]


def _key_exact(r: Row) -> tuple[Any, ...]:
    return (r.get("call_site"), r.get("action"), r.get("plan_fingerprint"))


def _key_line(r: Row) -> tuple[Any, ...]:
    return (r.get("call_site"), r.get("action"))


def _key_plan(r: Row) -> tuple[Any, ...]:
    return (r.get("action"), r.get("plan_fingerprint"))


_LEVELS: list[Callable[[Row], tuple[Any, ...]]] = [_key_exact, _key_line, _key_plan]


def align(a: list[Row], b: list[Row]) -> list[tuple[Row | None, Row | None]]:
    """Pairs (step of a, step of b) in run order; (x, None) removed, (None, y) added.

    Example::

        >>> a = [{"seq": 1, "action": "count", "call_site": "j.py:3", "plan_fingerprint": "f"},
        ...      {"seq": 2, "action": "write", "call_site": "j.py:9", "plan_fingerprint": "g"}]
        >>> b = [a[0], {"seq": 2, "action": "count", "call_site": "j.py:5", "plan_fingerprint": "h"},
        ...      {**a[1], "seq": 3}]
        >>> [(x and x["seq"], y and y["seq"]) for x, y in align(a, b)]
        [(1, 1), (None, 2), (2, 3)]
    """
    out: list[tuple[Row | None, Row | None]] = []

    def walk(xs: list[Row], ys: list[Row], level: int) -> None:
        if level == len(_LEVELS) or not xs or not ys:
            out.extend((x, None) for x in xs)
            out.extend((None, y) for y in ys)
            return
        key = _LEVELS[level]
        matcher = difflib.SequenceMatcher(None, [key(x) for x in xs], [key(y) for y in ys],
                                          autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                out.extend(zip(xs[i1:i2], ys[j1:j2], strict=True))
            else:
                walk(xs[i1:i2], ys[j1:j2], level + 1)

    walk(sorted(a, key=lambda r: r["seq"]), sorted(b, key=lambda r: r["seq"]), 0)
    return out


def _ratio(a: Any, b: Any) -> float | None:
    if a is None or b is None or a == 0:
        return None
    return round(b / a, 4)


def _conditions(a: Row, b: Row) -> list[dict[str, Any]]:
    """The agent's transformations (logical_steps) whose condition or expression changed,
    appeared or disappeared, matched by kind, method and line in code order."""
    def items(r: Row) -> list[dict[str, Any]]:
        return sorted((s for s in (r.get("logical_steps") or []) if s), key=lambda s: s.get("id") or 0)

    xs, ys = items(a), items(b)
    key = [(s.get("kind"), s.get("method"), s.get("source")) for s in xs]
    matcher = difflib.SequenceMatcher(None, key, [(s.get("kind"), s.get("method"), s.get("source"))
                                                  for s in ys], autojunk=False)
    found = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        pairs: list[tuple[Any, Any]] = (list(zip(xs[i1:i2], ys[j1:j2], strict=True)) if tag == "equal" else
                                        [(x, None) for x in xs[i1:i2]] + [(None, y) for y in ys[j1:j2]])
        for x, y in pairs:
            da = rm.normalize_plan(x.get("description")) if x else None
            db = rm.normalize_plan(y.get("description")) if y else None
            if da != db:
                ref = y or x
                found.append({"kind": ref.get("kind"), "method": ref.get("method"),
                              "source_a": x.get("source") if x else None,
                              "source_b": y.get("source") if y else None, "a": da, "b": db})
    return found


def _checked(op: Row) -> bool:
    return bool(op.get("source")) or str(op.get("name") or "").startswith(("Scan", "BatchScan"))


def _operators(a: Row, b: Row) -> list[dict[str, Any]]:
    """Checked operators (the agent's, by their source line, and the scans) whose rows changed."""
    def items(r: Row) -> list[Row]:
        return [o for o in (r.get("operators") or []) if o and _checked(o)]

    xs, ys = items(a), items(b)
    matcher = difflib.SequenceMatcher(None, [(o.get("name"), o.get("source")) for o in xs],
                                      [(o.get("name"), o.get("source")) for o in ys], autojunk=False)
    found = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            continue
        for x, y in zip(xs[i1:i2], ys[j1:j2], strict=True):
            if x.get("rows_out") != y.get("rows_out"):
                found.append({"operator": x.get("name"), "source": y.get("source"),
                              "id_a": x.get("id"), "id_b": y.get("id"),
                              "rows_a": x.get("rows_out"), "rows_b": y.get("rows_out"),
                              "ratio": _ratio(x.get("rows_out"), y.get("rows_out"))})
    return found


def _plan_diff(a: Row, b: Row) -> str:
    for column in ("logical_plan", "optimized_plan", "physical_plan"):
        xa, xb = rm.normalize_plan(a.get(column)), rm.normalize_plan(b.get(column))
        if xa != xb:
            return "\n".join(difflib.unified_diff(xa.splitlines(), xb.splitlines(),
                                                  f"run A step {a['seq']} ({column})",
                                                  f"run B step {b['seq']} ({column})",
                                                  lineterm="", n=1))
    return ""


def _identities(entries: list[Row]) -> dict[str, set[str | None]]:
    found: dict[str, set[str | None]] = {}
    for e in entries:
        found.setdefault(str(rm.dataset_key(e)), set()).add(rm.identity(e))
    return found


def _pair(a: Row | None, b: Row | None, ext_a: dict[int, list[Row]],
          ext_b: dict[int, list[Row]]) -> dict[str, Any]:
    ref = b or a or {}
    item: dict[str, Any] = {
        "seq_a": a["seq"] if a else None, "seq_b": b["seq"] if b else None,
        "action": ref.get("action"), "call_site": ref.get("call_site"),
        "call_site_a": a.get("call_site") if a else None,
        "status_a": a.get("status") if a else None, "status_b": b.get("status") if b else None,
        "rows_a": a.get("rows_out") if a else None, "rows_b": b.get("rows_out") if b else None,
        "rows_ratio": None, "plan_fingerprint_a": a.get("plan_fingerprint") if a else None,
        "plan_fingerprint_b": b.get("plan_fingerprint") if b else None,
        "changes": [], "conditions": [], "operators": [], "inputs": [], "plan_diff": "",
        "schema_a": None, "schema_b": None}
    if a is None or b is None:
        item["change"] = "added" if a is None else "removed"
        return item
    changes = item["changes"]
    fa, fb = a.get("plan_fingerprint"), b.get("plan_fingerprint")
    if fa and fb and fa != fb:
        changes.append("plan")
        item["conditions"] = _conditions(a, b)
        item["plan_diff"] = _plan_diff(a, b)
    if a.get("status") != b.get("status"):
        changes.append("status")
    if a.get("output_schema") != b.get("output_schema"):
        changes.append("schema")
        item["schema_a"], item["schema_b"] = a.get("output_schema"), b.get("output_schema")
    if a.get("rows_out") != b.get("rows_out"):
        changes.append("rows")
        item["rows_ratio"] = _ratio(a.get("rows_out"), b.get("rows_out"))
    item["operators"] = _operators(a, b)
    if item["operators"] and "rows" not in changes:
        changes.append("operator rows")
    ia, ib = _identities(ext_a.get(a["seq"], [])), _identities(ext_b.get(b["seq"], []))
    for key in sorted(set(ia) | set(ib)):
        if ia.get(key) != ib.get(key):
            item["inputs"].append({"input": key, "a": sorted(map(str, ia.get(key, set()))),
                                   "b": sorted(map(str, ib.get(key, set())))})
    if item["inputs"]:
        changes.append("inputs")
    if a.get("call_site") != b.get("call_site"):
        changes.append("call site")
    item["change"] = "changed" if changes else "same"
    return item


_RUN_FIELDS = ("status", "exit_code", "script_sha256", "argv", "spark_version", "python_version",
               "java_version", "pipetrace_version", "spark_conf")


def _run_changes(a: Any, b: Any) -> list[dict[str, Any]]:
    if not a.records or not b.records:
        return []
    ra, rb = a.records[-1], b.records[-1]
    found = []
    for name in _RUN_FIELDS:
        va, vb = ra.get(name), rb.get(name)
        if name == "spark_conf":
            ca, cb = dict(va or {}), dict(vb or {})
            for key in sorted(set(ca) | set(cb)):
                if ca.get(key) != cb.get(key):
                    found.append({"field": f"spark_conf[{key}]", "a": ca.get(key), "b": cb.get(key)})
        elif va != vb:
            found.append({"field": name, "a": va, "b": vb})
    return found


def _inputs(a: list[Row], b: list[Row]) -> list[dict[str, Any]]:
    """External inputs (not written earlier in the same run) whose identity differs."""
    ia = _identities([e for e, _ in rm.external_inputs(a)])
    ib = _identities([e for e, _ in rm.external_inputs(b)])
    found = []
    for key in sorted(set(ia) | set(ib)):
        if key not in ia or key not in ib:
            found.append({"input": key, "change": "only in B" if key not in ia else "only in A",
                          "a": sorted(map(str, ia.get(key, set()))),
                          "b": sorted(map(str, ib.get(key, set())))})
        elif ia[key] != ib[key]:
            change = "identity unknown" if None in ia[key] | ib[key] else "identity changed"
            found.append({"input": key, "change": change, "a": sorted(map(str, ia[key])),
                          "b": sorted(map(str, ib[key]))})
    return found


def _outputs(a: list[Row], b: list[Row], pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per dataset written by either run (its last write): whether what was written changed."""
    last_a = {o["key"]: o for o in rm.output_datasets(a)}
    last_b = {o["key"]: o for o in rm.output_datasets(b)}
    plan_changed = {p["seq_b"] for p in pairs if "plan" in p["changes"]}
    up_a, up_b = rm.Upstream(a), rm.Upstream(b)
    found = []
    for key in sorted(set(last_a) | set(last_b)):
        oa, ob = last_a.get(key), last_b.get(key)
        if oa is None or ob is None:
            found.append({"output": key, "change": "only in B" if oa is None else "only in A",
                          "reasons": [], "rows_a": oa and oa["rows"], "rows_b": ob and ob["rows"]})
            continue
        reasons = []
        if oa["rows"] != ob["rows"]:
            reasons.append(f"rows written {oa['rows']} → {ob['rows']}")
        if oa["schema"] != ob["schema"]:
            reasons.append("schema changed")
        if oa["status"] != ob["status"]:
            reasons.append(f"write {oa['status']} → {ob['status']}")
        if ob["seq"] in plan_changed:
            reasons.append(f"the plan that wrote it changed (step {ob['seq']})")
        ua = _identities(up_a.of(oa["seq"]))
        ub = _identities(up_b.of(ob["seq"]))
        moved = [k for k in sorted(set(ua) | set(ub)) if ua.get(k) != ub.get(k)]
        reasons += [f"input {k} changed" for k in moved]
        unknown = any(None in v for v in ub.values())
        change = "changed" if reasons else ("unknown" if unknown else "same")
        found.append({"output": key, "change": change, "reasons": reasons,
                      "rows_a": oa["rows"], "rows_b": ob["rows"]})
    return found


def compare(a: Any, b: Any) -> dict[str, Any]:
    """The diff from run ``a`` to run ``b`` (two :class:`pipetrace.run_data.RunData`) as plain
    data: ``steps`` (one entry per aligned pair), ``inputs``, ``outputs``, ``run``."""
    ext_a: dict[int, list[Row]] = {}
    for entry, seq in rm.external_inputs(a.steps):
        ext_a.setdefault(seq, []).append(entry)
    ext_b: dict[int, list[Row]] = {}
    for entry, seq in rm.external_inputs(b.steps):
        ext_b.setdefault(seq, []).append(entry)
    pairs = [_pair(x, y, ext_a, ext_b) for x, y in align(a.steps, b.steps)]
    return {"run_a": a.run_id, "run_b": b.run_id, "run": _run_changes(a, b),
            "steps": pairs, "inputs": _inputs(a.steps, b.steps),
            "outputs": _outputs(a.steps, b.steps, pairs)}


def to_frame(result: dict[str, Any]) -> pd.DataFrame:
    """One row per aligned step pair; the run, input and output changes in ``frame.attrs``."""
    frame = pd.DataFrame(result["steps"])
    for column in ("seq_a", "seq_b", "rows_a", "rows_b"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    frame.attrs.update({k: result[k] for k in ("run_a", "run_b", "run", "inputs", "outputs")})
    return frame


def diff(run_a: str, run_b: str, *, table: str | None = None) -> pd.DataFrame:
    """Runs ``run_a`` and ``run_b`` aligned step by step, as pandas: one row per pair with
    ``change`` (same, changed, added, removed), ``changes`` (plan, rows, operator rows, status,
    schema, inputs, call site), rows and their ratio, changed conditions, operators and plan diff;
    ``frame.attrs`` holds ``inputs``, ``outputs`` and ``run`` (the run records' differences).

    Example::

        >>> frame = diff("run-a", "run-b", table="/tmp/pipeline_steps")  # doctest: +SKIP
        >>> frame.loc[frame.change == "added", "seq_b"].tolist()        # doctest: +SKIP
        [4]
    """
    return to_frame(compare(load_run(run_a, table=table), load_run(run_b, table=table)))


def _n(value: Any) -> str:
    return f"{int(value):,}" if value is not None else "—"


def _step_line(p: dict[str, Any]) -> str:
    def seq(value: Any) -> str:
        return "—" if value is None else str(value)

    seqs = f"{seq(p['seq_a'])} → {seq(p['seq_b'])}"
    return f"{seqs} {p['action']} {p['call_site'] or ''}".strip()


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The diff as plain text lines (the Markdown and terminal forms share them)."""
    lines = []
    for r in result["run"]:
        lines.append(f"run: {r['field']}: {r['a']} → {r['b']}")
    steps = result["steps"]
    i = 0
    while i < len(steps):
        p = steps[i]
        if p["change"] in ("added", "removed"):
            j = i
            while j < len(steps) and steps[j]["change"] == p["change"]:
                j += 1
            if j - i > 3:  # a block of steps (a loop ran longer): one line, not thousands
                key = "seq_b" if p["change"] == "added" else "seq_a"
                sites = list(dict.fromkeys(str(q["call_site"]) for q in steps[i:j]))
                lines.append(f"steps {p['change']}: {steps[i][key]} … {steps[j - 1][key]} "
                             f"({j - i} steps, from {len(sites)} lines: "
                             f"{', '.join(sites[:5])}{' …' if len(sites) > 5 else ''})")
            else:
                lines += [f"step {q['change']}: {_step_line(q)}" for q in steps[i:j]]
            i = j
            continue
        i += 1
        if p["change"] == "changed":
            detail = [", ".join(p["changes"])]
            if "rows" in p["changes"]:
                detail.append(f"rows {_n(p['rows_a'])} → {_n(p['rows_b'])}"
                              + (f" (×{p['rows_ratio']})" if p["rows_ratio"] is not None else ""))
            detail += [f"{c['kind']} {c['a']} → {c['b']}" for c in p["conditions"]]
            lines.append(f"step changed: {_step_line(p)}: " + "; ".join(detail))
    for i in result["inputs"]:
        lines.append(f"input {i['change']}: {i['input']}: {', '.join(i['a']) or '—'} → "
                     f"{', '.join(i['b']) or '—'}")
    for o in result["outputs"]:
        if o["change"] != "same":
            lines.append(f"output {o['change']}: {o['output']}"
                         + (f": {'; '.join(o['reasons'])}" if o["reasons"] else ""))
    return lines


def to_markdown(result: dict[str, Any]) -> str:
    """The diff as Markdown: a summary, then each changed step with its plan diff."""
    same = sum(1 for p in result["steps"] if p["change"] == "same")
    both = sum(1 for p in result["steps"] if p["seq_a"] is not None and p["seq_b"] is not None)
    out = [f"## Diff: run {result['run_a']} → run {result['run_b']}", "",
           f"{both} steps paired across the runs, {same} of them unchanged; "
           f"{len(result['steps']) - both} in one run only.", ""]
    out += [f"- {line}" for line in summary_lines(result)] or ["- no change"]
    for p in result["steps"]:
        if p["change"] != "changed":
            continue
        out += ["", f"### {_step_line(p)}", ""]
        if p["operators"]:
            out += ["| operator | line | rows A | rows B | ratio |", "|---|---|---|---|---|"]
            out += [f"| {o['operator']} | {o['source'] or ''} | {_n(o['rows_a'])} | "
                    f"{_n(o['rows_b'])} | {o['ratio'] if o['ratio'] is not None else '—'} |"
                    for o in p["operators"]]
        if p["plan_diff"]:
            out += ["", "```diff", p["plan_diff"], "```"]
    return "\n".join(out) + "\n"


def to_html(result: dict[str, Any]) -> str:
    """The diff as a section of the HTML report."""
    e = html.escape
    items = "".join(f"<li class='diff-line'>{e(line)}</li>" for line in summary_lines(result))
    details = []
    for p in result["steps"]:
        if p["change"] != "changed":
            continue
        ops = "".join(f"<tr><td>{e(str(o['operator']))}</td><td><code>{e(str(o['source'] or ''))}"
                      f"</code></td><td>{_n(o['rows_a'])}</td><td>{_n(o['rows_b'])}</td><td>"
                      f"{o['ratio'] if o['ratio'] is not None else '—'}</td></tr>" for o in p["operators"])
        table = ("<table><tr><th>operator</th><th>line</th><th>rows A</th><th>rows B</th>"
                 f"<th>ratio</th></tr>{ops}</table>") if ops else ""
        plan = "".join(f"<div class='{'del' if ln.startswith('-') else 'add' if ln.startswith('+') else ''}'>"
                       f"<code>{e(ln)}</code></div>" for ln in p["plan_diff"].splitlines())
        details.append(f"<details class='diff-step' data-seq-a='{p['seq_a']}' data-seq-b="
                       f"'{p['seq_b']}'><summary>{e(_step_line(p))}: {e(', '.join(p['changes']))}"
                       f"</summary>{table}<pre>{plan}</pre></details>")
    return (f"<h2 id='diff'>Compared with run <code>{e(str(result['run_a']))}</code></h2>"
            f"<ul>{items or '<li>no change</li>'}</ul>" + "".join(details))
