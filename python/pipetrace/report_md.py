"""The run report as Markdown, for a validation file or a pull request: the run, inputs,
outputs, failures, the row flow and the steps (a loop's steps as one line); no plans (the HTML
report has them).

Example::

    >>> from pipetrace.report_md import render_md
    >>> print(render_md(run))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from pipetrace import report_flow
from pipetrace import report_model as rm
from pipetrace.cli_output import error_summary

__all__ = ["render_md"]


def _c(value: Any) -> str:
    """A table cell: no pipe or newline breaks the row."""
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    """An inline code span that holds backticks too (Spark's messages quote names in them)."""
    text = _c(value)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _n(value: Any) -> str:
    return f"{int(value):,}" if value is not None else "—"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(_c(v) for v in row) + " |" for row in rows])


_CAP = 30  # rows of the inputs and outputs tables; the HTML report has them all


def _capped(items: list[Any]) -> list[Any]:
    return items[:_CAP]


def _more(items: list[Any], what: str) -> list[str]:
    return ["", f"… and {len(items) - _CAP} more {what}: see the HTML report"] \
        if len(items) > _CAP else []


def render_md(run: Any) -> str:
    """The Markdown document of ``run`` (a :class:`pipetrace.run_data.RunData`)."""
    rows = run.steps
    facts = run.facts()
    out = [f"# Run `{run.run_id}`: {facts.get('status', '?')}", ""]
    out += _table(["", ""], [[k, v] for k, v in facts.items() if k != "status"])
    inputs = sorted(rm.input_datasets(rows), key=lambda i: i["written_by_run"])
    out += ["", "## Inputs", ""]
    out += _table(["kind", "name", "format", "identity", "files", "origin", "read by steps"], [
        [i["kind"], f"`{i['name']}`", i["format"],
         i["identity"] or ("generated" if i["kind"] in ("range", "local", "rdd") else "unknown"),
         i["files"], "written by this run" if i["written_by_run"] else "external",
         ", ".join(map(str, i["steps"][:12])) + (" …" if len(i["steps"]) > 12 else "")]
        for i in _capped(inputs)]) + _more(inputs, "inputs (written by this run and read back)") \
        if inputs else ["no inputs recorded"]
    outputs = rm.output_datasets(rows)
    out += ["", "## Outputs", ""]
    out += _table(["step", "name", "format", "mode", "rows written", "version", "status"], [
        [o["seq"], f"`{o['name']}`", o["format"], o["mode"], _n(o["rows"]), o["version"],
         o["status"]] for o in _capped(outputs)]) + _more(outputs, "writes") \
        if outputs else ["the run wrote nothing"]
    found = rm.failures(rows, error_summary)
    out += ["", "## Failures", ""]
    if not found:
        out.append("no step failed")
    for f in found:
        r, nxt = f.step, f.next
        then = (f"step {nxt['seq']} {nxt.get('action')} at `{nxt.get('call_site')}`: "
                f"{nxt.get('status')}" if nxt else "nothing (the run's last step)")
        error = error_summary(str(r["error"])) if r.get("error") else "no error recorded"
        again = (f" (and the same at {len(f.seqs) - 1} more steps: "
                 f"{', '.join(map(str, f.seqs[1:13]))}{' …' if len(f.seqs) > 13 else ''})"
                 if len(f.seqs) > 1 else "")
        out += [f"- step {r['seq']} {r.get('action')} at `{r.get('call_site')}`: {_code(error)};"
                f" what ran next: {then}{again}"]
    out += ["", "## Row flow", "",
            "Counts: *exact* = the condition's own rows (measured); *operator* = the rows of the "
            "physical operator planned from it; none where the optimizer merged it with another "
            "step. A join's rows in are its left input's.", ""]
    grouped = rm.groups(rows)
    flows = [(g, f) for g, f in ((g, report_flow.funnel(g.first)) for g in grouped) if f is not None]
    for group, flow in flows:
        more = (f", the first of {len(group.steps)} steps at this line: {group.label}"
                if len(group.steps) > 1 else "")
        out += [f"**step {flow.seq}** (rows out {_n(flow.rows_out)}{more})", ""]
        out += _table(["what", "condition", "line", "rows in", "rows out", "share dropped",
                       "count of"], [
            [f.kind + (" **multiplies rows**" if f.multiplies else ""),
             _code(f.description[:200]) + (f" ({f.note})" if f.note else ""), f.source,
             _n(f.rows_in), _n(f.rows_out),
             "—" if f.share_dropped is None else f"{100 * f.share_dropped:.1f} %",
             f.basis or "not known"] for f in flow.rows])
        out.append("")
    if not flows:
        out.append("no filter, join, dedup or aggregate recorded")
    out += ["", "## Steps", ""]
    table = []
    for g in grouped:
        first = g.first
        flow = ", ".join(rm.short_name(i) for i in (first.get("inputs") or []) if i)
        if first.get("output"):
            flow += f" → {rm.short_name(first['output'])}"
        rows_out = _n(first.get("rows_out")) if len(g.steps) == 1 else f"{len(g.steps)} steps"
        table.append([g.label, first.get("action"), first.get("status"), rows_out,
                      first.get("call_site"), flow])
    out += _table(["seq", "action", "status", "rows", "call site", "inputs → output"], table)
    return "\n".join(out) + "\n"
