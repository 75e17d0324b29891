"""`pipetrace diff`: two real runs of one script (tests/report_runs.py) where the second changes
a filter (MIN_AGE 18 → 21), adds a step and reads a changed input (`orders` rewritten). Each of
the three is reported exactly, every count against the truth computed here, and nothing else is
reported as changed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

import pipetrace
from pipetrace import run_diff
from pipetrace.report_model import normalize_plan
from pipetrace.run_data import RunData
from tests.report_runs import Runs, line_of, truth

# Each action of the script: what it returns (a key of truth()), whether its plan uses the
# changed filter (`adults`), whether it reads the rewritten input (`orders`).
ACTIONS = {
    "A_ADULTS": ("adults", True, False),
    "A_BIG": ("big", False, True),
    "A_OFFERS": ("offers", True, False),
    "A_SPEND": ("spend", False, True),
    "A_WRITE": ("summary", True, False),
    "A_FAIL": (None, False, False),
    "A_READBACK": ("summary", False, False),
}


@pytest.fixture(scope="module")
def result(report_runs: Runs) -> dict[str, Any]:
    done = report_runs.cli("diff", "run-a", "run-b", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _pair(result: dict[str, Any], runs: Runs, marker: str) -> dict[str, Any]:
    seq_b = runs.step_at("run-b", marker)["seq"]
    [pair] = [p for p in result["steps"] if p["seq_b"] == seq_b]
    return pair


def test_steps_align_by_what_they_are_and_the_added_step_is_found(result: dict[str, Any],
                                                                  report_runs: Runs) -> None:
    a, b = report_runs.steps["run-a"], report_runs.steps["run-b"]
    assert len(b) == len(a) + 1
    added = report_runs.step_at("run-b", "A_ADDED")
    assert [(p["seq_a"], p["seq_b"]) for p in result["steps"] if p["change"] == "added"] == [
        (None, added["seq"])]
    assert not [p for p in result["steps"] if p["change"] == "removed"]
    for marker in ACTIONS:  # every other step paired with its twin, past the added one
        pair = _pair(result, report_runs, marker)
        assert pair["seq_a"] == report_runs.step_at("run-a", marker)["seq"]
        assert pair["call_site"] == f"{report_runs.script}:{line_of(marker)}"
    assert len(result["steps"]) == len(b)


def test_changes_are_exactly_the_filter_the_rows_and_the_input(result: dict[str, Any],
                                                               report_runs: Runs) -> None:
    want_a, want_b = truth("a"), truth("b")
    for marker, (key, uses_filter, reads_orders) in ACTIONS.items():
        pair = _pair(result, report_runs, marker)
        rows_differ = key is not None and want_a[key] != want_b[key]
        expected = set()
        if uses_filter:
            expected.add("plan")
        if rows_differ:
            expected.add("rows")
        elif uses_filter or reads_orders:
            expected.add("operator rows")
        if reads_orders:
            expected.add("inputs")
        assert set(pair["changes"]) == expected, (marker, pair["changes"])
        assert pair["change"] == ("changed" if expected else "same")
        if key is not None:
            assert (pair["rows_a"], pair["rows_b"]) == (want_a[key], want_b[key]), marker
        if rows_differ:
            assert pair["rows_ratio"] == round(want_b[key] / want_a[key], 4)


def test_the_changed_filter_is_shown_as_its_condition_and_a_plan_diff(
        result: dict[str, Any], report_runs: Runs) -> None:
    for marker, (_key, uses_filter, _orders) in ACTIONS.items():
        pair = _pair(result, report_runs, marker)
        if not uses_filter:
            assert pair["conditions"] == [] and pair["plan_diff"] == ""
            continue
        recorded = {run: normalize_plan(next(
            s["description"] for s in report_runs.step_at(run, marker)["logical_steps"]
            if s["kind"] == "filter" and s["source"].endswith(f":{line_of('L_ADULTS')}")))
            for run in ("run-a", "run-b")}
        assert "18" in recorded["run-a"] and recorded["run-b"] == recorded["run-a"].replace("18", "21")
        assert [(c["kind"], c["a"], c["b"]) for c in pair["conditions"]] == [
            ("filter", recorded["run-a"], recorded["run-b"])]
        body = pair["plan_diff"].splitlines()[2:]
        removed = [ln for ln in body if ln.startswith("-")]
        added = [ln for ln in body if ln.startswith("+")]
        assert len(removed) == len(added) == 1, pair["plan_diff"]
        assert removed[0][1:].replace("18", "21") == added[0][1:]
    # The filter's own operator, per step, with the true rows and ratio.
    adults = _pair(result, report_runs, "A_ADULTS")
    [op] = [o for o in adults["operators"] if o["operator"] == "Filter"]
    assert (op["rows_a"], op["rows_b"]) == (truth("a")["adults"], truth("b")["adults"])
    assert op["ratio"] == round(op["rows_b"] / op["rows_a"], 4)


def test_only_the_rewritten_input_changed_and_the_output_it_did_not_feed(
        result: dict[str, Any], report_runs: Runs) -> None:
    def identity(run: str, name: str) -> list[str]:
        return sorted({f"sha256 {i['fingerprint']}" for s in report_runs.steps[run]
                       for i in s["inputs"] if i["path"].endswith(f"/{name}")})

    [orders] = [i for i in result["inputs"]]
    assert orders["input"].endswith("/orders") and orders["change"] == "identity changed"
    assert (orders["a"], orders["b"]) == (identity("run-a", "orders"), identity("run-b", "orders"))
    assert orders["a"] != orders["b"]
    assert identity("run-a", "people") == identity("run-b", "people")
    # The output was computed from people with the changed filter, not from orders.
    write = report_runs.step_at("run-b", "A_WRITE")
    assert result["outputs"] == [{
        "output": write["output"]["path"], "change": "changed",
        "reasons": [f"the plan that wrote it changed (step {write['seq']})"],
        "rows_a": truth("a")["summary"], "rows_b": truth("b")["summary"]}]
    assert [r["field"] for r in result["run"]] == ["argv"]


def test_python_twin_returns_pandas(result: dict[str, Any], report_runs: Runs) -> None:
    frame = pipetrace.diff("run-a", "run-b", table=str(report_runs.table))
    assert len(frame) == len(result["steps"])
    assert frame["change"].tolist() == [p["change"] for p in result["steps"]]
    assert frame["seq_b"].tolist() == [p["seq_b"] for p in result["steps"]]
    assert frame.attrs["inputs"] == result["inputs"]
    assert frame.attrs["outputs"] == result["outputs"]


def test_markdown_and_table_formats(report_runs: Runs) -> None:
    md = report_runs.cli("diff", "run-a", "run-b", "--format", "md")
    assert md.returncode == 0, md.stderr
    added = report_runs.step_at("run-b", "A_ADDED")
    assert f"- step added: — → {added['seq']} count {added['call_site']}" in md.stdout
    assert "```diff" in md.stdout and "input identity changed" in md.stdout
    table = report_runs.cli("diff", "run-a", "run-b")
    assert table.returncode == 0, table.stderr
    assert "added" in table.stdout and "identity changed" in table.stdout


def test_alignment_survives_moved_lines_and_removed_steps(report_runs: Runs) -> None:
    """The same run with its code edited: lines after the third action moved down by two, and
    the second action deleted. Steps still pair with their twins (by plan where the line moved)."""
    a = report_runs.steps["run-a"]
    b = copy.deepcopy(a[:1] + a[2:])
    for i, row in enumerate(b, 1):
        row["seq"] = i
        if row["seq"] >= 3:
            path, line = row["call_site"].rsplit(":", 1)
            row["call_site"] = f"{path}:{int(line) + 2}"
    pairs = run_diff.align(a, b)
    assert [(x and x["seq"], y and y["seq"]) for x, y in pairs] == [
        (1, 1), (2, None)] + [(s, s - 1) for s in range(3, len(a) + 1)]
    result = run_diff.compare(RunData("a", "t", a), RunData("b", "t", b))
    moved = [p for p in result["steps"] if p["change"] == "changed"]
    assert {tuple(p["changes"]) for p in moved} == {("call site",)}
    assert [p["seq_a"] for p in result["steps"] if p["change"] == "removed"] == [2]
