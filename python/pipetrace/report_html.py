"""The run report as one self-contained HTML document: inline CSS and SVG, no script, no
network request (it opens from an e-mail attachment, a file, or Databricks' ``displayHTML``).

Layout: the run, its inputs and outputs, the step graph (SVG), the row flow, failures, column
lineage, then every step (collapsed) and every distinct plan once. Elements carry ``data-*``
attributes with the raw numbers, so tools (and the tests) read the document without parsing
formatted text.

Example::

    >>> from pipetrace.report_html import render
    >>> html = render(run, compare=None)  # doctest: +SKIP
"""

from __future__ import annotations

import html
from typing import Any

from pipetrace import report_flow, report_plans
from pipetrace import report_model as rm
from pipetrace.cli_output import error_summary

__all__ = ["render"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24;
max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d0d7de;padding:3px 7px;
vertical-align:top;text-align:left}th{background:#f6f8fa}td.n{text-align:right;
font-variant-numeric:tabular-nums}code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:480px}
.FAILED,.bad{color:#cf222e}.SUCCEEDED,.ok{color:#1a7f37}.muted{color:#656d76}
.warn{background:#fff8c5}details{margin:2px 0}summary{cursor:pointer}
.failure{border-left:4px solid #cf222e;padding:4px 10px;margin:8px 0;background:#fff5f5}
svg text{font:12px ui-monospace,Menlo,Consolas,monospace}
.del{background:#ffebe9}.add{background:#dafbe1}
"""

_ROW_H = 30
_GENERATED = ("range", "local", "rdd")
_NODE_W = 560
_ARC_X = 200


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: Any) -> str:
    return f"{int(value):,}" if value is not None else "—"


def _dropped(value: int | None) -> str:
    """Rows dropped; a join that added rows shows how many it added."""
    return f"+{-value:,} added" if value is not None and value < 0 else _n(value)


def _bytes(value: Any) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return str(value)


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _attr(value: Any) -> str:
    return "" if value is None else _e(value)


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows if v not in (None, ""))
    return f"<table class='kv'>{body}</table>"


def _header(run: Any) -> str:
    facts = run.facts()
    status = facts.get("status") or "?"
    rows = [(k, _e(v)) for k, v in facts.items() if k != "status"]
    return (f"<h1>Run <code>{_e(run.run_id)}</code> <span class='{_e(status)}' id='run-status'>"
            f"{_e(status)}</span></h1><p class='muted'>pipetrace report · table {_e(run.table)}"
            f"</p>{_kv(rows)}")


_LONG = 12  # a table longer than this shows its first rows, the rest behind a "more"


def _long_table(head: str, rows: list[str], what: str) -> str:
    """A table whose rows past the first ``_LONG`` are collapsed (still in the document)."""
    table = f"<table>{head}{''.join(rows[:_LONG])}</table>"
    if len(rows) <= _LONG:
        return table
    return (table + f"<details><summary>{len(rows) - _LONG} more {what}</summary><table>{head}"
            + "".join(rows[_LONG:]) + "</table></details>")


def _inputs(rows: list[dict[str, Any]]) -> str:
    """What the run read: first the data it started from, then what it read back of its own
    writes (collapsed when long: a loop writing and reading one file per pass)."""
    items = rm.input_datasets(rows)
    if not items:
        return "<h2 id='inputs'>Inputs</h2><p class='muted'>no inputs recorded</p>"
    head = ("<tr><th>kind</th><th>name</th><th>format</th><th>identity</th><th>files</th>"
            "<th>newest file</th><th>read by</th></tr>")
    parts = {True: [], False: []}
    for i in items:
        files = (f"{_n(i['files'])} file{'' if i['files'] == 1 else 's'} · {_bytes(i['bytes'])}"
                 if i["files"] is not None else "")
        # Generated data (spark.range, local rows) has no identity to record.
        shown = "generated" if i["kind"] in _GENERATED and not i["identity"] else _ident(i["identity"])
        parts[i["written_by_run"]].append(
            f"<tr class='input' data-key='{_attr(i['key'])}' data-identity='{_attr(i['identity'])}'>"
            f"<td>{_e(i['kind'])}</td><td><code>{_e(i['name'])}</code></td><td>{_e(i['format'])}"
            f"</td><td><code title='{_attr(i['identity'])}'>{_e(shown)}</code></td>"
            f"<td>{files}</td><td>{_e(i['modified_max'])}</td>"
            f"<td>{_steps_links(i['steps'])}</td></tr>")
    out = "<h2 id='inputs'>Inputs</h2>"
    if parts[False]:
        out += "<p>what the run started from:</p>" + _long_table(head, parts[False], "inputs")
    if parts[True]:
        out += ("<p>what it read back of its own writes:</p>"
                + _long_table(head, parts[True], "intermediate results"))
    return out


def _ident(value: str | None) -> str:
    if not value:
        return "unknown"
    return value[:23] + "…" if value.startswith("sha256 ") and len(value) > 24 else value


def _line(source: str | None) -> str:
    """``file.py:12`` of a source path (the full path is in the step's details)."""
    return source.rsplit("/", 1)[-1] if source else ""


def _steps_links(seqs: list[int], limit: int = 12) -> str:
    shown = ", ".join(f"<a href='#step-{s}'>{s}</a>" for s in seqs[:limit])
    return shown + (f" … ({len(seqs)} steps)" if len(seqs) > limit else "")


def _outputs(rows: list[dict[str, Any]]) -> str:
    items = rm.output_datasets(rows)
    if not items:
        return "<h2 id='outputs'>Outputs</h2><p class='muted'>the run wrote nothing</p>"
    body = [
        f"<tr class='output {_e(o['status'])}' data-key='{_attr(o['key'])}' "
        f"data-rows='{_attr(o['rows'])}'><td><a href='#step-{o['seq']}'>{o['seq']}</a></td>"
        f"<td>{_e(o['kind'])}</td><td><code>{_e(o['name'])}</code></td><td>{_e(o['format'])}</td>"
        f"<td>{_e(o['mode'])}</td><td class='n'>{_n(o['rows'])}</td><td>{_e(o['version'])}</td>"
        f"<td>{_e(o['operation'])}</td><td>{_e(o['status'])}</td></tr>" for o in items]
    head = ("<tr><th>step</th><th>kind</th><th>name</th><th>format</th><th>mode</th>"
            "<th>rows written</th><th>version</th><th>operation</th><th>status</th></tr>")
    return "<h2 id='outputs'>Outputs</h2>" + _long_table(head, body, "writes")


def _node_label(group: rm.Group) -> str:
    first = group.first
    action = first.get("action") or first.get("spark_func") or "?"
    site = (first.get("call_site") or "").rsplit("/", 1)[-1]
    if len(group.steps) > 1:
        return f"{group.label} {action} ×{len(group.steps)} {site}"[:80]
    rows = first.get("rows_out")
    out = rm.short_name(first.get("output")) if first.get("output") else ""
    text = f"{group.label} {action} {site}"
    text += f" → {out}" if out else ""
    text += f" · {rows:,} rows" if rows is not None else ""
    return text[:80]


def _graph(rows: list[dict[str, Any]], groups: list[rm.Group]) -> str:
    index = {s: i for i, g in enumerate(groups) for s in g.seqs}
    links: dict[tuple[int, int], list[str]] = {}
    for a, b, key in rm.edges(rows):
        ga, gb = index[a], index[b]
        if ga != gb:
            links.setdefault((ga, gb), []).append(key)
    height = len(groups) * _ROW_H + 10
    parts = [f"<svg id='graph' width='{_ARC_X + _NODE_W + 10}'"
             f" height='{height}' role='img' aria-label='steps linked by the data they share'>"]
    for (ga, gb), keys in links.items():
        y1, y2 = ga * _ROW_H + 17, gb * _ROW_H + 17
        bulge = _ARC_X - min(_ARC_X - 10, 12 + (y2 - y1) // 6)
        names = ", ".join(sorted(set(keys)))
        parts.append(f"<path class='edge' data-from='{groups[ga].first['seq']}' data-to="
                     f"'{groups[gb].first['seq']}' d='M{_ARC_X},{y1} C{bulge},{y1} {bulge},{y2} "
                     f"{_ARC_X},{y2}' fill='none' stroke='#0969da' stroke-width='1.5'>"
                     f"<title>{_e(names)}</title></path>")
    for i, group in enumerate(groups):
        failed = any(s.get("status") == "FAILED" for s in group.steps)
        status = "FAILED" if failed else "SUCCEEDED"
        y = i * _ROW_H + 5
        fill, stroke = ("#ffebe9", "#cf222e") if failed else ("#f6f8fa", "#8c959f")
        mark = "✗ " if failed else ""
        parts.append(
            f"<a href='#step-{group.first['seq']}'><g class='node' data-seqs='"
            f"{' '.join(map(str, group.seqs))}' data-status='{status}'>"
            f"<rect x='{_ARC_X}' y='{y}' width='{_NODE_W}' height='{_ROW_H - 6}' rx='4' "
            f"fill='{fill}' stroke='{stroke}' stroke-width='{2 if failed else 1}'/>"
            f"<text x='{_ARC_X + 8}' y='{y + 16}'>{_e(mark + _node_label(group))}</text></g></a>")
    parts.append("</svg>")
    return ("<h2 id='graph-section'>Step graph</h2><p class='muted'>one box per step (a loop's "
            "steps at one line of its body as one box), in the order they ran; an arc joins a "
            "step to a later one that read what it wrote; failed steps in red.</p>"
            + "".join(parts))


def _funnels(groups: list[rm.Group]) -> str:
    """One funnel per group: a loop's steps at one line show the first step's flow (each
    step's rows are in its entry under Steps)."""
    blocks = []
    for group in groups:
        row = group.first
        flow = report_flow.funnel(row)
        if flow is None:
            continue
        reads = "".join(f"<tr class='read'><td>read</td><td colspan='3'><code>{_e(d)[:160]}</code>"
                        f"</td><td></td><td class='n'>{_n(r)}</td><td></td><td></td></tr>"
                        for d, r in flow.reads)
        body = []
        for f in flow.rows:
            flag = " <b class='bad'>multiplies rows</b>" if f.multiplies else ""
            note = f"<br><span class='muted'>{_e(f.note)}</span>" if f.note else ""
            basis = {"exact": "exact", "operator": "operator"}.get(f.basis or "", "not known")
            share = (f"×{f.rows_out / f.rows_in:.2f}" if f.multiplies and f.rows_in and f.rows_out
                     else _share(f.share_dropped))
            body.append(
                f"<tr class='funnel-row' data-seq='{flow.seq}' data-kind='{_e(f.kind)}' "
                f"data-rows-in='{_attr(f.rows_in)}' data-rows-out='{_attr(f.rows_out)}' "
                f"data-basis='{_attr(f.basis)}' data-multiplies='{str(f.multiplies).lower()}' "
                f"data-source='{_attr(f.source)}'><td>{_e(f.kind)}</td>"
                f"<td><code>{_e(f.description)[:300]}</code>{flag}{note}</td>"
                f"<td><code>{_e(_line(f.source))}</code></td><td class='n'>{_n(f.rows_in)}</td>"
                f"<td class='n'>{_dropped(f.dropped)}</td><td class='n'>{_n(f.rows_out)}</td>"
                f"<td class='n'>{share}</td><td>{_e(basis)}</td></tr>")
        title = _e(_node_label(rm.Group([row])))
        if len(group.steps) > 1:
            title += f" (the first of {len(group.steps)} steps at this line: {_e(group.label)})"
        blocks.append(
            f"<details class='funnel' data-seq='{flow.seq}' open><summary>step {title}</summary>"
            "<table><tr><th>what</th><th>condition</th><th>line</th><th>rows in</th>"
            "<th>dropped</th><th>rows out</th><th>share dropped</th><th>count of</th></tr>"
            f"{reads}{''.join(body)}<tr><td>{_result_label(row)}</td><td colspan='4'></td>"
            f"<td class='n'>{_n(flow.rows_out)}</td><td></td><td></td></tr></table></details>")
    if not blocks:
        return ("<h2 id='row-flow'>Row flow</h2><p class='muted'>no filter, join, dedup or "
                "aggregate recorded</p>")
    if len(blocks) > 50:  # a long run: the first ones open, the rest collapsed
        blocks = blocks[:50] + [b.replace(" open>", ">", 1) for b in blocks[50:]]
    return ("<h2 id='row-flow'>Row flow</h2><p class='muted'>per step, the filters, joins, dedups "
            "and aggregates the agent wrote, in code order. Count of: <i>exact</i>, the "
            "condition's own rows (measured); <i>operator</i>, the rows of the physical operator "
            "planned from it; a step the optimizer merged with another shows no count, since no "
            "count is its alone. A join's rows in are its left input's; one that returns more "
            "rows than either input had multiplies rows (its factor in the share column).</p>"
            + "".join(blocks))


def _result_label(row: dict[str, Any]) -> str:
    """The funnel's last line: where the rows went (written to a dataset, or returned)."""
    if row.get("output"):
        return f"written to <code>{_e(rm.short_name(row['output']))}</code>"
    return f"{_e(row.get('action') or 'result')} returned"


def _failures(rows: list[dict[str, Any]]) -> str:
    """Each failure with its error and what ran next; a repeated one once, with its steps."""
    found = rm.failures(rows, error_summary)
    if not found:
        return "<h2 id='failures'>Failures</h2><p class='ok'>no step failed</p>"
    out = []
    for f in found:
        row, nxt = f.step, f.next
        then = ("nothing: it was the run's last step" if nxt is None else
                f"<a href='#step-{nxt['seq']}'>step {nxt['seq']}</a> {_e(nxt.get('action'))} at "
                f"<code>{_e(nxt.get('call_site'))}</code>: <span class='{_e(nxt.get('status'))}'>"
                f"{_e(nxt.get('status'))}</span>")
        error = str(row.get("error") or "")
        again = f.seqs[1:]
        repeated = (f"<br><span class='muted'>the same failure again at {len(again)} more "
                    f"step(s): {_steps_links(again)}</span>" if again else "")
        out.append(
            f"<div class='failure' data-seq='{row['seq']}' data-seqs='"
            f"{' '.join(map(str, f.seqs))}'><b>step {row['seq']} "
            f"{_e(row.get('action'))}</b> at <code>{_e(row.get('call_site'))}</code><br>"
            f"<code class='bad'>{_e(error_summary(error) if error else 'no error recorded')}</code>"
            f"<details><summary>full error</summary><pre>{_e(error)}</pre></details>"
            f"what ran next: {then}{repeated}</div>")
    return "<h2 id='failures'>Failures</h2>" + "".join(out)


def _lineage(rows: list[dict[str, Any]]) -> str:
    """Each output's column lineage; a write whose entries equal an earlier write's from the
    same line (a loop writing one file per pass) refers to it instead of repeating them."""
    blocks = []
    first: dict[tuple[Any, ...], int] = {}
    for row in rows:
        if not row.get("output") or not row.get("column_lineage"):
            continue
        entries = [e for e in row["column_lineage"] if e]
        same = (row.get("call_site"), tuple(tuple(sorted(e.items())) for e in entries))
        if row.get("call_site") and same in first:
            blocks.append(f"<p>step {row['seq']} → <code>{_e(rm.short_name(row['output']))}</code>"
                          f": as step {first[same]}</p>")
            continue
        first[same] = row["seq"]
        body = "".join(
            f"<tr class='lineage' data-seq='{row['seq']}'><td><code>{_e(e.get('column') or '(every row)')}"
            f"</code></td><td><code>{_e(e.get('input'))}</code></td><td><code>"
            f"{_e(e.get('input_column'))}</code></td><td>{_e(e.get('how'))}</td></tr>"
            for e in entries[:400])
        more = f"<p class='muted'>{len(entries) - 400} more entries</p>" if len(entries) > 400 else ""
        blocks.append(f"<details open><summary>step {row['seq']} → <code>"
                      f"{_e(rm.short_name(row['output']))}</code></summary><table><tr><th>column"
                      f"</th><th>input</th><th>input column</th><th>how</th></tr>{body}</table>"
                      f"{more}</details>")
    if not blocks:
        return ""
    return "<h2 id='lineage'>Column lineage of the outputs</h2>" + "".join(blocks)


def _operators(row: dict[str, Any], members: list[dict[str, Any]]) -> str:
    """The step's operators as an indented tree with their rows (their details are in the
    plan): one text line each, so a run of thousands of steps stays small."""
    ops = [o for o in (row.get("operators") or []) if o]
    if not ops:
        return ""
    depth: dict[Any, int] = {}
    lines = []
    for op in ops:
        parent = op.get("parent_id")
        depth[op.get("id")] = depth.get(parent, -1) + 1 if parent is not None else 0
        rows_in = ", ".join(_n(v) for v in (op.get("rows_in") or []))
        name = "  " * depth[op.get("id")] + str(op.get("name"))
        flow = f"{rows_in} → {_n(op.get('rows_out'))}" if rows_in else _n(op.get("rows_out"))
        site = f"  {op['source'].rsplit('/', 1)[-1]}" if op.get("source") else ""
        lines.append(f"{op.get('id'):>3} {name}  {flow}{site}")
    note = (f"<p class='muted'>operators of step {row['seq']}, the first of the "
            f"{len(members)}</p>" if len(members) > 1 else "")
    return (f"<details><summary>operators ({len(ops)}): id, operator, rows in → rows out, "
            f"line</summary>{note}<pre>{_e(chr(10).join(lines))}</pre></details>")


def _plan_ref(row: dict[str, Any], base: str) -> str:
    key = report_plans.plan_key(row)
    return "" if key == base else f"<a href='#plan-{_e(key)}'>{_e(key[:12])}</a>"


def _step(group: rm.Group) -> str:
    row = group.first
    plan = report_plans.plan_key(row)
    status = "FAILED" if any(s.get("status") == "FAILED" for s in group.steps) else row.get("status")
    facts: list[tuple[str, Any]] = [
        ("action", _e(row.get("action") or row.get("spark_func"))),
        ("call site", f"<code>{_e(row.get('call_site'))}</code>" if row.get("call_site") else None),
        ("inputs", ", ".join(f"<code title='{_attr(i.get('name'))}'>{_e(rm.short_name(i))}</code> "
                             f"({_e(_ident(rm.identity(i)))})" for i in (row.get("inputs") or []) if i)),
        ("output", f"<code>{_e(row['output'].get('name'))}</code>" if row.get("output") else None),
        ("rows", _n(row.get("rows_out")) if len(group.steps) == 1 else None),
        ("duration", f"{row.get('duration_ms')} ms" if row.get("duration_ms") is not None else None),
        ("plan", f"<a href='#plan-{_e(plan)}'>{_e(plan[:12])}</a>"),
        ("warnings", "<br>".join(_e(w) for w in (row.get("capture_warnings") or [])) or None),
        ("error", f"<code class='bad'>{_e(error_summary(str(row['error'])))}</code>"
         if row.get("error") else None),
    ]
    members = ""
    if len(group.steps) > 1:
        base = report_plans.plan_key(row)
        # One short row per step (a loop may have thousands): the plan only where it differs.
        lines = "".join(f"<tr id='step-{s['seq']}'><td>{s['seq']}<td>{_n(s.get('rows_out'))}"
                        f"<td>{_e(s.get('duration_ms'))}<td>{_plan_ref(s, base)}"
                        for s in group.steps[1:])
        members = ("<details><summary>each step</summary><table><tr><th>seq</th><th>rows</th>"
                   f"<th>ms</th><th>plan</th></tr>{lines}</table></details>")
    return (f"<details class='step' id='step-{row['seq']}' data-seqs='"
            f"{' '.join(map(str, group.seqs))}'><summary><span class='{_e(status)}'>"
            f"{'✗' if status == 'FAILED' else '✓'}</span> {_e(_node_label(group))}</summary>"
            f"{_kv(facts)}{_operators(row, group.steps)}{members}</details>")


def render(run: Any, *, compare: str | None = None) -> str:
    """The whole document for ``run`` (a :class:`pipetrace.run_data.RunData`); ``compare``: an
    already rendered diff section to include."""
    rows = run.steps
    grouped = rm.groups(rows)
    sections = [_header(run), _inputs(rows), _outputs(rows), _graph(rows, grouped),
                _funnels(grouped), _failures(rows), _lineage(rows), compare or "",
                "<h2 id='steps'>Steps</h2>" + "".join(_step(g) for g in grouped),
                report_plans.section(rows, grouped)]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            "content='width=device-width'><title>pipetrace run "
            f"{_e(run.run_id)}</title><style>{_CSS}</style></head><body>"
            + "".join(sections) + "</body></html>")
