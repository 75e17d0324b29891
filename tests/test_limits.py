"""Limits that protect the user's job: bursts of actions, huge plans."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

import pipetrace
from tests.conftest import flushed_steps


def test_a_burst_of_5000_actions_gives_5000_steps_and_no_dropped_event(spark: Any,
                                                                      tmp_path: Path) -> None:
    # The cheapest actions there are (no Spark job, no task): a SET command, and a collect of a
    # one-row local relation every fifth action. Spark runs each in a few ms, so the listener,
    # not Spark, is the load. (A job per action, e.g. count(), costs ~40 ms each here.)
    local = spark.sql("SELECT 1 AS x")
    # No background commits during the burst: this measures the listener and Spark's bus; the
    # one flush at the end delivers everything (the committer's own cost is in benchmarks/).
    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s"),
                          commit_interval=3600) as trace:
        before = trace.status()
        for i in range(5000):   # as fast as a Python loop can issue actions
            if i % 5 == 0:
                local.collect()
            else:
                spark.sql(f"SET pipetrace.burst={i}")
        flushed = trace.flush()
        after = trace.status()
        steps = pipetrace.sql("SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi, "
                              "count(DISTINCT seq) AS distinct_seq, "
                              "sum(CASE WHEN action = 'collect' THEN 1 ELSE 0 END) AS collects "
                              "FROM pipeline_steps",
                              table=trace.table).to_pylist()[0]
    assert flushed.captured == 5000 and not flushed.timed_out
    assert steps == {"n": 5000, "lo": 1, "hi": 5000, "distinct_seq": 5000, "collects": 1000}
    assert after["spark_dropped_events"].get("shared", 0) == \
        before["spark_dropped_events"].get("shared", 0)
    assert after["listener_errors"] == before["listener_errors"]
    spark.conf.unset("pipetrace.burst")


def test_a_500_column_chain_is_captured_with_a_marked_truncated_plan(spark: Any,
                                                                    tmp_path: Path) -> None:
    df = spark.range(10)
    for i in range(500):
        df = df.withColumn(f"c{i}", F.col("id") + i)
    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s")) as trace:
        assert len(df.collect()) == 10
        step = flushed_steps(trace).iloc[-1]
    assert step["plan_truncated"]
    text = step["logical_plan"]
    assert text.endswith("raise spark.pipetrace.plan_max_chars]")
    assert len(text) <= 100_000 + 200
    assert text.count("Project") > 100     # what fits of the 500 projections
    # The optimizer collapses them into one projection: short enough to keep whole.
    assert "more fields" in step["optimized_plan"] and "truncated" not in step["optimized_plan"]
    assert step["rows_out"] == 10 and list(step["capture_warnings"]) == []


def test_a_10_mb_error_message_is_captured_cut_with_a_warning(spark: Any, tmp_path: Path) -> None:
    # A UDF that raised with a whole payload in its message. Its cost on the listener thread is
    # in benchmarks/ (listener_worst_case); here: the step is there, cut, redacted, and says so.
    record = '{"id": 17, "key": "k-17"} '
    message = "agent payload " + record * (10 * 2**20 // len(record))

    @F.udf("string")
    def fail(x):  # type: ignore[no-untyped-def]
        raise ValueError(message)

    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s")) as trace:
        with pytest.raises(Exception, match="agent payload"):
            spark.range(1).select(fail("id")).collect()
        step = flushed_steps(trace).iloc[-1]
    assert (step["action"], step["status"]) == ("collect", "FAILED")
    error = step["error"]
    assert error.endswith("...[truncated]") and len(error) == 4000 + len("...[truncated]")
    assert "ValueError: agent payload" in error
    assert '"key": "*********(redacted)"' in error and "k-17" not in error   # redacted, too
    (warning,) = [w for w in step["capture_warnings"] if w.startswith("error:")]
    size = int(re.fullmatch(r"error: message of (\d+) chars cut to 4000", warning)[1])
    assert size > len(message)
