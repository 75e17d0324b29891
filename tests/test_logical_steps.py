"""The agent's logical steps (``logical_steps``) and operators' ``source``: which physical
operator each agent-written filter/join/dedup ended up in, never a merged count presented as
one condition's, and (opt-in) each filter's exact rows, against counts the test computes."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

import pipetrace
from tests.conftest import flushed_steps


def next_line() -> str:
    frame = inspect.currentframe().f_back  # type: ignore[union-attr]
    return f"{frame.f_code.co_filename}:{frame.f_lineno + 1}"  # type: ignore[union-attr]


@pytest.fixture(params=["true", "false"], ids=["aqe", "no-aqe"])
def aqe(request: Any, spark: Any) -> Iterator[str]:
    spark.conf.set("spark.sql.adaptive.enabled", request.param)
    yield request.param
    spark.conf.unset("spark.sql.adaptive.enabled")


def people(spark: Any) -> Any:
    return (spark.range(0, 1000).withColumn("age", F.col("id") % 90)
            .withColumn("region", F.col("id") % 7))


def loans(spark: Any) -> Any:
    return (spark.range(0, 3000).select((F.col("id") % 1200).alias("id"),
                                        (F.col("id") % 500).alias("amount")))


def last_step(handle: Any) -> dict[str, Any]:
    steps = flushed_steps(handle)
    return steps.iloc[-1].to_dict()


def ops_by_id(step: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(o["id"]): o for o in step["operators"]}


def agent_step(step: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [s for s in step["logical_steps"] if s["kind"] == kind]
    assert len(found) == 1, step["logical_steps"]
    return found[0]


def test_join_on_names_and_dedup_carry_their_lines(spark: Any, trace: Any, aqe: str) -> None:
    join_line = next_line()
    joined = people(spark).join(loans(spark), "id")
    dedup_line = next_line()
    deduped = joined.dropDuplicates(["id"])
    deduped.count()
    step = last_step(trace)
    ops = ops_by_id(step)
    joins = [o for o in ops.values() if "Join" in o["name"]]
    aggregates = [o for o in ops.values() if o["name"] == "HashAggregate"
                  and o["source"] is not None]
    assert [o["source"] for o in joins] == [join_line]
    assert aggregates and {o["source"] for o in aggregates} == {dedup_line}
    join, dedup = agent_step(step, "join"), agent_step(step, "dedup")
    assert (join["source"], dedup["source"]) == (join_line, dedup_line)
    assert [ops[int(i)]["name"] for i in join["operator_ids"]] == [joins[0]["name"]]
    assert {int(i) for i in dedup["operator_ids"]} == {int(o["id"]) for o in aggregates}
    assert not join["merged"] and not dedup["merged"]


def ancestors(ops: dict[int, dict[str, Any]], op_id: int) -> list[str]:
    names = []
    parent = ops[op_id]["parent_id"]
    while parent is not None and not math.isnan(parent):
        names.append(ops[int(parent)]["name"])
        parent = ops[int(parent)]["parent_id"]
    return names


def test_filter_pushed_below_a_join_names_its_operator(spark: Any, trace: Any, aqe: str) -> None:
    joined = people(spark).join(loans(spark), "id")
    line = next_line()
    adults = joined.filter(F.col("age") >= 18)
    adults.count()
    step = last_step(trace)
    ops = ops_by_id(step)
    adult = agent_step(step, "filter")
    assert adult["source"] == line
    assert re.fullmatch(r"\(age#\d+L >= cast\(18 as bigint\)\)", adult["description"])
    [op_id] = [int(i) for i in adult["operator_ids"]]
    # The optimizer moved it below the join (onto the people side), where it is not merged.
    assert ops[op_id]["name"] == "Filter" and ops[op_id]["source"] == line
    assert any("Join" in name for name in ancestors(ops, op_id))
    assert not adult["merged"]
    assert adult["rows_in"] is None and adult["rows_out"] is None and not adult["exact"]
    assert "not measured" in adult["rows_unknown"]


def test_filter_merged_into_a_join_is_not_counted_as_itself(spark: Any, trace: Any,
                                                             aqe: str) -> None:
    join_line = next_line()
    joined = people(spark).join(loans(spark), "id")
    line = next_line()
    kept = joined.filter(F.col("age") * 5 >= F.col("amount"))
    kept.count()
    step = last_step(trace)
    ops = ops_by_id(step)
    population, join = agent_step(step, "filter"), agent_step(step, "join")
    [op_id] = [int(i) for i in population["operator_ids"]]
    assert "Join" in ops[op_id]["name"]  # the join's condition does the filter's work
    assert ops[op_id]["source"] == join_line
    assert population["merged"] and list(population["merged_with"]) == [join["id"]]
    assert join["merged"] and list(join["merged_with"]) == [population["id"]]
    assert population["source"] == line
    assert population["rows_in"] is None and population["rows_out"] is None
    assert "merged" in population["rows_unknown"]


def truth(spark: Any) -> dict[str, int]:
    """The rows the filters see and keep, by separate counts, with no capture attached."""
    joined = people(spark).join(loans(spark), "id")
    return {"joined": joined.count(),
            "adults": joined.filter(F.col("age") >= 18).count(),
            "kept": joined.filter(F.col("age") >= 18)
            .filter(F.col("age") * 5 >= F.col("amount")).count()}


def test_measured_filters_count_exactly(spark: Any, tmp_path: Path, aqe: str) -> None:
    expected = truth(spark)
    handle = pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s"),
                              measure_steps=True)
    try:
        joined = people(spark).join(loans(spark), "id")
        adults = joined.filter(F.col("age") >= 18)
        kept = adults.filter(F.col("age") * 5 >= F.col("amount"))
        kept.count()
        step = last_step(handle)
        first, second = [s for s in step["logical_steps"] if s["kind"] == "filter"]
        assert (first["rows_in"], first["rows_out"]) == (expected["joined"], expected["adults"])
        assert (second["rows_in"], second["rows_out"]) == (expected["adults"], expected["kept"])
        assert first["exact"] and second["exact"]
        # Cut short by a limit, or re-run by a global sort's sampling: null, with the reason.
        kept.show(3)
        shown = [s for s in last_step(handle)["logical_steps"] if s["kind"] == "filter"][-1]
        assert shown["rows_in"] is None and "limit" in shown["rows_unknown"]
        kept.orderBy("amount").collect()
        sorted_ = [s for s in last_step(handle)["logical_steps"] if s["kind"] == "filter"][-1]
        assert sorted_["rows_in"] is None and "sort" in sorted_["rows_unknown"]
    finally:
        handle.detach()
