"""`pipetrace report`: the document of a real run (tests/report_runs.py), opened in headless
Chromium and read back from its DOM, against the truth the test computed from the data it wrote
and against what the table recorded."""

from __future__ import annotations

import copy
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

import pipetrace
from pipetrace import run_report
from pipetrace.report_model import normalize_plan
from pipetrace.run_data import RunData
from tests.report_runs import Node, Runs, dump_dom, line_of, parse, read_png, screenshot, truth

RUN = "run-a"


@pytest.fixture(scope="module")
def page(report_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Node]:
    """run-a's report written by the CLI, and the DOM Chromium built from it."""
    out = tmp_path_factory.mktemp("report") / "run-a.html"
    done = report_runs.cli("report", RUN, "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out, parse(dump_dom(out))


def _funnel(dom: Node, seq: int, kind: str) -> list[dict[str, str]]:
    return [r.attrs for r in dom.find("tr", class_="funnel-row", data_seq=str(seq), data_kind=kind)]


def _operator(row: dict[str, Any], name: str, marker: str, script: Path) -> dict[str, Any]:
    [op] = [o for o in row["operators"] if name in o["name"]
            and o["source"] == f"{script}:{line_of(marker)}"]
    return op


def test_the_page_needs_no_network(page: tuple[Path, Node]) -> None:
    text = page[0].read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"url\(|@import|<script|<link|<img|<iframe|<object|<embed", text, re.I)
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text


def test_graph_has_one_node_per_step_and_marks_the_failure(report_runs: Runs,
                                                           page: tuple[Path, Node]) -> None:
    dom = page[1]
    steps = report_runs.steps[RUN]
    nodes = dom.find("g", class_="node")
    assert [n.attrs["data-seqs"] for n in nodes] == [str(s["seq"]) for s in steps]
    failed = report_runs.step_at(RUN, "A_FAIL")
    assert failed["status"] == "FAILED"
    assert [n.attrs["data-seqs"] for n in nodes if n.attrs["data-status"] == "FAILED"] == [
        str(failed["seq"])]
    # The only data passed between steps: the write, read back by the last step.
    edges = [(e.attrs["data-from"], e.attrs["data-to"]) for e in dom.find("path", class_="edge")]
    write, readback = report_runs.step_at(RUN, "A_WRITE"), report_runs.step_at(RUN, "A_READBACK")
    assert edges == [(str(write["seq"]), str(readback["seq"]))]


def test_row_flow_numbers_are_the_true_counts(report_runs: Runs, page: tuple[Path, Node]) -> None:
    dom, want, script = page[1], truth("a"), report_runs.script
    adults = report_runs.step_at(RUN, "A_ADULTS")
    [flow] = _funnel(dom, adults["seq"], "filter")
    assert (flow["data-rows-in"], flow["data-rows-out"]) == (str(want["people"]), str(want["adults"]))
    assert flow["data-source"] == f"{script}:{line_of('L_ADULTS')}"
    # ... and what the table recorded for that filter's operator.
    op = _operator(adults, "Filter", "L_ADULTS", script)
    assert (op["rows_in"], op["rows_out"]) == ([want["people"]], want["adults"])
    assert adults["rows_out"] == want["adults"]

    [big] = _funnel(dom, report_runs.step_at(RUN, "A_BIG")["seq"], "filter")
    assert (big["data-rows-in"], big["data-rows-out"]) == (str(want["orders"]), str(want["big"]))

    offers = report_runs.step_at(RUN, "A_OFFERS")
    [join] = _funnel(dom, offers["seq"], "join")
    # More rows out than either side had: the join on a non-unique key is flagged.
    assert join["data-rows-out"] == str(want["offers"]) and join["data-multiplies"] == "true"
    assert join["data-rows-in"] == str(want["adults"])
    [flt] = _funnel(dom, offers["seq"], "filter")
    assert flt["data-rows-out"] == str(want["adults"]) and flt["data-multiplies"] == "false"

    write = report_runs.step_at(RUN, "A_WRITE")
    [agg] = _funnel(dom, write["seq"], "aggregate")
    assert (agg["data-rows-in"], agg["data-rows-out"]) == (str(want["adults"]), str(want["summary"]))
    # Every number shown is one the table holds for that step's operators or logical steps.
    for row in report_runs.steps[RUN]:
        recorded = {o["rows_out"] for o in row["operators"] or []} | {
            v for o in row["operators"] or [] for v in (o["rows_in"] or [])}
        for shown in _funnel(dom, row["seq"], "filter") + _funnel(dom, row["seq"], "join"):
            for key in ("data-rows-in", "data-rows-out"):
                assert shown[key] == "" or int(shown[key]) in recorded


def test_a_merged_condition_shows_no_count_of_its_own(report_runs: Runs,
                                                      page: tuple[Path, Node]) -> None:
    spend = report_runs.step_at(RUN, "A_SPEND")
    [logical] = [s for s in spend["logical_steps"] if s["kind"] == "filter"]
    assert logical["merged"] and not logical["exact"]  # the optimizer put it into the join
    [shown] = page[1].find("tr", class_="funnel-row", data_seq=str(spend["seq"]),
                           data_kind="filter")
    assert (shown.attrs["data-rows-in"], shown.attrs["data-rows-out"]) == ("", "")
    assert "merged" in shown.all_text()
    assert spend["rows_out"] == truth("a")["spend"]


def test_failure_is_shown_with_what_ran_next(report_runs: Runs, page: tuple[Path, Node]) -> None:
    failed = report_runs.step_at(RUN, "A_FAIL")
    after = report_runs.step_at(RUN, "A_READBACK")
    [box] = page[1].find("div", class_="failure")
    assert box.attrs["data-seq"] == str(failed["seq"])
    text = box.all_text()
    assert "CAST_INVALID_INPUT" in text and "CAST_INVALID_INPUT" in failed["error"]
    assert f"step {after['seq']}" in text.split("what ran next")[1]


def test_inputs_and_outputs_carry_their_identity(report_runs: Runs,
                                                  page: tuple[Path, Node]) -> None:
    dom, steps = page[1], report_runs.steps[RUN]
    recorded = {i["path"]: f"sha256 {i['fingerprint']}" for s in steps for i in s["inputs"]}
    shown = {r.attrs["data-key"]: r.attrs["data-identity"] for r in dom.find("tr", class_="input")}
    assert shown == recorded
    assert {k.rsplit("/", 1)[-1] for k in shown} == {"people", "orders", "promos", "out"}
    [out] = dom.find("tr", class_="output")
    assert out.attrs["data-rows"] == str(truth("a")["summary"])
    assert out.attrs["data-key"] == report_runs.step_at(RUN, "A_WRITE")["output"]["path"]
    lineage = {(r.find("code")[0].all_text()) for r in dom.find("tr", class_="lineage")}
    assert {"country", "n"} <= lineage


def test_each_plan_is_stored_once(report_runs: Runs, page: tuple[Path, Node]) -> None:
    text = page[0].read_text(encoding="utf-8")
    fingerprints = {s["plan_fingerprint"] for s in report_runs.steps[RUN]}
    for fp in fingerprints:
        assert text.count(f"id='plan-{fp}'") == 1
    assert len(page[1].find("details", class_="step")) == len(report_runs.steps[RUN])


def test_screenshot_renders(page: tuple[Path, Node], tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    screenshot(page[0], png, 1100, 1500)
    pixels = read_png(png)
    assert pixels.shape == (1500, 1100, 3)
    ink = (pixels.sum(axis=2) < 600).mean()
    assert 0.01 < ink < 0.6, ink  # text and boxes, not a blank or a black page
    green = ((abs(pixels - (26, 127, 55))).sum(axis=2) < 40).sum()   # the run's SUCCEEDED
    red = ((abs(pixels - (207, 34, 46))).sum(axis=2) < 40).sum()     # the failed step
    assert green > 50 and red > 50, (green, red)


def test_markdown(report_runs: Runs) -> None:
    done = report_runs.cli("report", RUN, "--format", "md")
    assert done.returncode == 0, done.stderr
    text, want = done.stdout, truth("a")
    assert text.startswith(f"# Run `{RUN}`: SUCCEEDED")
    adults = report_runs.step_at(RUN, "A_ADULTS")
    block = text.split(f"**step {adults['seq']}**")[1].split("**step")[0]
    assert f"| {want['people']:,} | {want['adults']:,} |" in block
    assert "CAST_INVALID_INPUT" in text and "multiplies rows" in text
    assert text.count("\n## ") == 5  # inputs, outputs, failures, row flow, steps


def test_python_twin(report_runs: Runs) -> None:
    doc = pipetrace.report(RUN, table=str(report_runs.table))
    assert isinstance(doc, run_report.HtmlReport) and doc._repr_html_() == str(doc)
    assert len(parse(str(doc)).find("g", class_="node")) == len(report_runs.steps[RUN])
    md = pipetrace.report(RUN, table=str(report_runs.table), format="md")
    assert isinstance(md, str) and md.startswith(f"# Run `{RUN}`")


def test_report_with_compare(report_runs: Runs, tmp_path: Path) -> None:
    out = tmp_path / "run-b.html"
    done = report_runs.cli("report", "run-b", "--compare", RUN, "--out", str(out))
    assert done.returncode == 0, done.stderr
    both = parse(dump_dom(out))
    assert both.find("h2", id="diff")
    lines = [li.all_text() for li in both.find("li", class_="diff-line")]
    added = report_runs.step_at("run-b", "A_ADDED")
    assert [x for x in lines if x.startswith("step added")] == [
        f"step added: — → {added['seq']} count {added['call_site']}"]


def test_thousands_of_steps_stay_small(report_runs: Runs) -> None:
    """A loop of 2,000 actions at one line (then the run's own steps, the first of which is
    that line's too): one graph node for the loop, its plan once, a small file."""
    rows = copy.deepcopy(report_runs.steps[RUN])
    loop = report_runs.step_at(RUN, "A_ADULTS")
    many = [{**copy.deepcopy(loop), "seq": i} for i in range(1, 2001)]
    rest = [{**r, "seq": 2000 + i} for i, r in enumerate(rows, 1)]
    run = RunData("big", "t", many + rest)
    text = run_report.render(run)
    dom = parse(text)
    nodes = dom.find("g", class_="node")
    assert len(nodes) == len(rows)
    assert nodes[0].attrs["data-seqs"].split() == [str(i) for i in range(1, 2002)]
    assert text.count(f"id='plan-{loop['plan_fingerprint']}'") == 1
    assert normalize_plan(loop["physical_plan"])[:60] in text
    assert len(text.encode()) < 400_000, len(text.encode())


def test_rows_of_an_old_schema_still_report(report_runs: Runs) -> None:
    """Schema 1-3 rows have no logical_steps, column_lineage, input identity or call site."""
    rows = copy.deepcopy(report_runs.steps[RUN])
    for r in rows:
        for key in ("logical_steps", "column_lineage", "call_site", "parent_event_id", "ml"):
            r.pop(key, None)
        for entry in r["inputs"]:
            for key in ("path", "files", "bytes", "modified_max", "fingerprint"):
                entry.pop(key, None)
    dom = parse(run_report.render(RunData("old", "t", rows)))
    assert len(dom.find("g", class_="node")) == len(rows)
    adults = next(r for r in rows if r["rows_out"] == truth("a")["adults"])
    # The operators that carry the agent's line stand in for the logical steps.
    [flow] = _funnel(dom, adults["seq"], "filter")
    assert flow["data-rows-out"] == str(truth("a")["adults"])
    assert all(r.attrs["data-identity"] == "" for r in dom.find("tr", class_="input"))


def test_trace_report_on_the_attach_handle(spark: Any, tmp_path: Path) -> None:
    with pipetrace.attach(spark, table=str(tmp_path / "pipeline_steps"),
                          spool=str(tmp_path / "spool"),
                          run_id=f"rep-{uuid.uuid4().hex[:6]}") as trace:
        kept = spark.range(50).filter("id >= 20").count()
        doc = trace.report()
    dom = parse(str(doc))
    assert [n.attrs["data-seqs"] for n in dom.find("g", class_="node")] == ["1"]
    [flow] = dom.find("tr", class_="funnel-row")
    assert (flow.attrs["data-rows-in"], flow.attrs["data-rows-out"]) == ("50", str(kept))


def test_unknown_run_says_what_to_do(report_runs: Runs) -> None:
    done = report_runs.cli("report", "no-such-run")
    assert done.returncode == 1
    assert "no steps for run 'no-such-run'" in done.stderr and "SELECT DISTINCT run_id" in done.stderr
