"""Every row count pipetrace records equals what really happened (tests/corpus.py).

For each case the test computes the truth itself: what the action returned or what was
written, and for named operators the count() of the DataFrame up to that operator. Each case
runs with adaptive execution on and off and with 1, 7 and 200 shuffle partitions; the fast lane
runs one setting, the slow lane the other five. Counts that cannot be known must be null with
the reason in capture_warnings, never a plausible number.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pipetrace
from tests.corpus import CASES, SETTINGS, Case, make_env

FAST = (True, 7)


@dataclass
class Outcome:
    """What one setting's run of the corpus captured, and the truths computed afterwards."""

    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    checks: dict[str, list[int]] = field(default_factory=dict)
    rows_in: dict[str, list[list[int] | None]] = field(default_factory=dict)


def _name(setting: tuple[bool, int]) -> str:
    return f"{'aqe' if setting[0] else 'noaqe'}{setting[1]}"


def run_corpus(spark: Any, root: Path, setting: tuple[bool, int]) -> Outcome:
    """Run every case with capture on, then compute each truth with capture off."""
    env = make_env(spark, root / "data")
    env.setting = _name(setting)
    spark.conf.set("spark.sql.adaptive.enabled", str(setting[0]).lower())
    spark.conf.set("spark.sql.shuffle.partitions", str(setting[1]))
    out = Outcome()
    results: dict[str, Any] = {}
    per_case: list[tuple[str, int]] = []
    try:
        for case in CASES:
            if case.setup is not None:
                case.setup(env)
        run = root / f"run-{env.setting}"
        handle = pipetrace.attach(spark, table=str(run / "pipeline_steps"), spool=str(run / "spool"),
                                  run_id=f"corpus-{env.setting}-{uuid.uuid4().hex[:6]}")
        captured = 0
        try:
            for case in CASES:
                for key, value in case.conf.items():
                    spark.conf.set(key, value)
                try:
                    results[case.id] = case.act(env)
                finally:
                    for key in case.conf:
                        spark.conf.unset(key)
                now = handle.flush().captured
                per_case.append((case.id, now - captured))
                captured = now
        finally:
            handle.detach()
        steps = handle.steps().to_dict("records")
        for case_id, n in per_case:
            out.steps[case_id], steps = steps[:n], steps[n:]
        for case in CASES:
            out.rows[case.id] = case.rows(results[case.id], env)
            out.checks[case.id] = [c.truth(env).count() for c in case.checks]
            out.rows_in[case.id] = [None if c.rows_in is None else [f(env).count() for f in c.rows_in]
                                    for c in case.checks]
    finally:
        if getattr(env, "cached", None) is not None:
            env.cached.unpersist()
        spark.conf.unset("spark.sql.adaptive.enabled")
        spark.conf.set("spark.sql.shuffle.partitions", "2")
    return out


@pytest.fixture(scope="module")
def corpus(spark_session: Any, tmp_path_factory: pytest.TempPathFactory) \
        -> Callable[[tuple[bool, int]], Outcome]:
    """The corpus' outcome per setting, run once per setting on first use."""
    root = tmp_path_factory.mktemp("corpus")
    done: dict[tuple[bool, int], Outcome | Exception] = {}

    def get(setting: tuple[bool, int]) -> Outcome:
        if setting not in done:
            try:
                done[setting] = run_corpus(spark_session, root, setting)
            except Exception as exc:  # noqa: BLE001 - every case of the setting reports it
                done[setting] = exc
        if isinstance(done[setting], Exception):
            raise done[setting]
        return done[setting]

    return get


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _ops(step: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(op) for op in step["operators"]]


def _find(ops: list[dict[str, Any]], pattern: str) -> list[dict[str, Any]]:
    return [op for op in ops if re.search(pattern, f"{op['name']} {op['description']}")]


def _unknown_ids(warnings: list[str]) -> dict[int, str]:
    """Operator ids named by 'rows unknown for operators [..]: reason' warnings."""
    ids: dict[int, str] = {}
    for w in warnings:
        m = re.match(r"rows unknown for operators \[([\d, ]+)\]: (.*)", w)
        if m:
            for i in m.group(1).split(","):
                ids[int(i)] = m.group(2)
    return ids


def _tree(ops: list[dict[str, Any]]) -> str:
    """The operators as an indented list, for failure messages."""
    depth: dict[int, int] = {}
    lines = []
    for op in ops:
        depth[op["id"]] = 0 if op["parent_id"] is None else depth.get(op["parent_id"], 0) + 1
        rows_in = None if op["rows_in"] is None else list(op["rows_in"])
        lines.append(f"{'  ' * depth[op['id']]}{op['id']} {op['name']} rows={op['rows_out']} "
                     f"in={rows_in} {dict(op['metrics'] or {}).get('numOutputRows', '')}")
    return "\n".join(lines)


def check_case(outcome: Outcome, case: Case) -> None:
    steps = outcome.steps[case.id]
    assert len(steps) == 1, f"{len(steps)} steps for one action: {[s['action'] for s in steps]}"
    step = steps[0]
    warnings = list(step["capture_warnings"])
    assert (step["action"], step["status"]) == (case.action, "SUCCEEDED")
    if case.null_rows is not None:
        assert _null(step["rows_out"]), f"rows_out {step['rows_out']} should be unknown"
        assert any(case.null_rows in w for w in warnings), warnings
    ops = _ops(step)
    if case.null_rows is None:
        assert step["rows_out"] == outcome.rows[case.id], f"{warnings}\n{_tree(ops)}"
    unknown = _unknown_ids(warnings)
    for op in ops:
        # A number is true or null with a reason: never negative, never silently missing.
        # (Command nodes, "Execute ...", have no rows of their own: null, nothing to explain.)
        if _null(op["rows_out"]) and not op["name"].startswith("Execute "):
            assert op["id"] in unknown, f"{op['id']} {op['name']}: null, no reason\n{_tree(ops)}"
        elif not _null(op["rows_out"]):
            assert op["rows_out"] >= 0
    for check, truth, rows_in in zip(case.checks, outcome.checks[case.id],
                                     outcome.rows_in[case.id], strict=True):
        found = _find(ops, check.match)
        assert found, f"no operator matches {check.match!r}: {[o['name'] for o in ops]}"
        op = found[0]
        assert op["rows_out"] == truth, f"{check.match} {unknown.get(op['id'])}\n{_tree(ops)}"
        if rows_in is not None:
            assert list(op["rows_in"]) == rows_in, f"{check.match}\n{_tree(ops)}"
    for pattern in case.cut:
        found = _find(ops, pattern)
        assert found, f"no operator matches {pattern!r}"
        for op in found:
            assert _null(op["rows_out"]), f"{op['name']} under a limit should be unknown"
            assert re.match("cut short|partly run", unknown[op["id"]]), unknown[op["id"]]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_count_is_true(corpus: Callable[[tuple[bool, int]], Outcome], case: Case) -> None:
    check_case(corpus(FAST), case)


@pytest.mark.slow
@pytest.mark.parametrize("setting", [s for s in SETTINGS if s != FAST], ids=_name)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_count_is_true_in_every_setting(corpus: Callable[[tuple[bool, int]], Outcome],
                                             case: Case, setting: tuple[bool, int]) -> None:
    check_case(corpus(setting), case)
