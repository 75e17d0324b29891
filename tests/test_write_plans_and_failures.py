"""What a write command's step shows of the query it wrote, how far a failed step's operators
got, and operator names as Spark prints them, trimmed (issue 12, items 2, 8 and 10)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import functions as F

from pipetrace.spark import Handle
from tests.conftest import flushed_steps

WROTE = "== the query this command wrote (its nested write) =="
AGENT_FILTER = r"id#\d+L > (cast\()?3"  # analyzed: cast(3 as bigint); optimized: 3


def _query(spark: Any) -> Any:
    return (spark.range(0, 1000).withColumn("k", F.col("id") % 10)
            .filter(F.col("id") > 3).groupBy("k").count())


@pytest.mark.parametrize("write", [
    lambda s, n: _query(s).write.saveAsTable(n),
    lambda s, n: (_query(s).createOrReplaceTempView(f"{n}_src"),
                  s.sql(f"CREATE TABLE {n} USING parquet AS SELECT * FROM {n}_src WHERE k > 2")),
], ids=["saveAsTable", "ctas"])
def test_a_table_write_stores_the_query_it_wrote(spark: Any, trace: Handle, unique: str,
                                                 write: Any) -> None:
    write(spark, unique)
    step = flushed_steps(trace).iloc[-1]
    assert step["action"] == "write" and step["status"] == "SUCCEEDED"
    for column in ("logical_plan", "optimized_plan", "physical_plan"):
        text = step[column]
        assert text.count(WROTE) == 1, column
        command, wrote = text.split(WROTE)
        assert "InsertIntoHadoopFsRelationCommand" in wrote and "InsertInto" not in command
        # The agent's filter and the range it read, as the nested write optimized and ran them.
        assert re.search(AGENT_FILTER, wrote), column
        assert "Range (0, 1000" in wrote
    assert "HashAggregate" in step["physical_plan"].split(WROTE)[1]
    assert not step["plan_truncated"]


def test_a_path_write_keeps_its_one_plan(spark: Any, trace: Handle, tmp_path: Path) -> None:
    _query(spark).write.parquet(str(tmp_path / "out"))
    step = flushed_steps(trace).iloc[-1]
    assert WROTE not in step["optimized_plan"]
    assert re.search(AGENT_FILTER, step["optimized_plan"])


def test_a_failed_steps_operators_show_how_far_they_got(spark: Any, trace: Handle) -> None:
    # Two partitions of 500 rows; only the second one fails (at id 990), so the first one's
    # tasks may complete before the job is aborted, or may be cancelled with it.
    data = spark.range(0, 1000, 1, 2)
    failing = data.select(F.when(F.col("id") == 990, F.raise_error(F.lit("bad row 990")))
                          .otherwise(F.col("id")).alias("id")).filter("id % 2 = 0")
    with pytest.raises(Exception, match="bad row 990"):
        failing.groupBy().count().collect()
    step = flushed_steps(trace).iloc[-1]
    assert step["status"] == "FAILED" and pd.isna(step["rows_out"])
    assert any(w.startswith("partial counts: the action failed") for w in step["capture_warnings"])
    # What a completed task can have produced: the first partition's rows, never all of them.
    truth = {"Range": 500, "Filter": 250}
    seen = []
    for op in step["operators"]:
        name = op["name"]
        if name in truth:
            assert pd.isna(op["rows_out"]) or op["rows_out"] == truth[name], (name, op["rows_out"])
            seen.append(name)
        if pd.isna(op["rows_out"]):
            reasons = " ".join(step["capture_warnings"])
            assert f"{op['id']}" in reasons
    assert set(seen) == set(truth)
    # The final aggregate never ran: null with its reason, not 0.
    root = step["operators"][0]
    assert pd.isna(root["rows_out"])
    assert any("failed first" in w and "[0" in w for w in step["capture_warnings"])


def test_operator_names_are_trimmed(spark: Any, trace: Handle, tmp_path: Path) -> None:
    spark.range(10).write.parquet(str(tmp_path / "p"))
    spark.read.parquet(str(tmp_path / "p")).filter("id > 4").count()
    step = flushed_steps(trace).iloc[-1]
    names = [op["name"] for op in step["operators"]]
    assert "Scan parquet" in names
    assert all(name == name.strip() for name in names)
