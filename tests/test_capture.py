"""Capture through attach(): one step per action, against the suite's real SparkSession and a
real Delta table per test (delta-rs)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pyspark.sql import functions as F

import pipetrace
from pipetrace.schema import SCHEMA_VERSION
from pipetrace.spark import Handle
from tests.conftest import flushed_steps

Action = Callable[[Any, Path, str], Any]


def numbers(spark: Any) -> Any:
    return spark.range(0, 100).withColumn("g", F.col("id") % 4)


def with_arrow(spark: Any, f: Callable[[], Any], enabled: str = "true") -> Any:
    # Set either way: Arrow is off by default on Spark 3.5 and 4.0 (CI lanes), on in 4.3
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", enabled)
    try:
        return f()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.pyspark.enabled")


def without_arrow(spark: Any, f: Callable[[], Any]) -> Any:
    return with_arrow(spark, f, "false")


def create_table(spark: Any, name: str) -> None:
    spark.sql(f"CREATE TABLE {name} (id BIGINT, g BIGINT) USING parquet")


# (case id, setup run before counting, the one action, action, spark_func, rows_out,
#  output (kind, format, mode) or None)
CASES: list[tuple[str, Action | None, Action, str, str, int | None, tuple | None]] = [
    ("count", None, lambda s, p, n: numbers(s).filter("id >= 10").count(),
     "count", "count", 90, None),
    ("collect", None, lambda s, p, n: numbers(s).filter("id < 7").collect(),
     "collect", "collectToPython", 7, None),
    ("take", None, lambda s, p, n: numbers(s).take(3), "take", "collectToPython", 3, None),
    ("first", None, lambda s, p, n: numbers(s).first(), "take", "collectToPython", 1, None),
    ("toPandas-arrow", None,
     lambda s, p, n: with_arrow(s, lambda: numbers(s).filter("g = 1").toPandas()),
     "toPandas", "collectAsArrowToPython", 25, None),
    ("toPandas-no-arrow", None,
     lambda s, p, n: without_arrow(s, lambda: numbers(s).filter("g = 1").toPandas()),
     "toPandas", "collectToPython", 25, None),
    # show(5) prints 5 rows (Spark fetches 6 to know whether to print "only showing").
    ("show", None, lambda s, p, n: numbers(s).show(5), "show", "head", 5, None),
    ("isEmpty", None, lambda s, p, n: numbers(s).isEmpty(), "isEmpty", "isEmpty", 1, None),
    ("write-parquet", None, lambda s, p, n: numbers(s).write.parquet(str(p / n)),
     "write", "command", 100, ("path", "parquet", "ErrorIfExists")),
    ("write-csv", None, lambda s, p, n: numbers(s).write.mode("overwrite").csv(str(p / n)),
     "write", "command", 100, ("path", "csv", "Overwrite")),
    ("write-json", None, lambda s, p, n: numbers(s).limit(10).write.json(str(p / n)),
     "write", "command", 10, ("path", "json", "ErrorIfExists")),
    ("save", None,
     lambda s, p, n: numbers(s).write.format("parquet").mode("append").save(str(p / n)),
     "write", "command", 100, ("path", "parquet", "Append")),
    ("saveAsTable", None, lambda s, p, n: numbers(s).write.saveAsTable(n),
     "write", "command", 100, ("table", "parquet", "ErrorIfExists")),
    ("insertInto", lambda s, p, n: create_table(s, n),
     lambda s, p, n: numbers(s).write.insertInto(n), "write", "command", 100,
     ("table", "parquet", "Append")),
    ("writeTo-create", None, lambda s, p, n: numbers(s).writeTo(n).using("parquet").create(),
     "write", "command", 100, ("table", "parquet", "ErrorIfExists")),
    ("sql-ddl", None, lambda s, p, n: create_table(s, n), "command", "command", None, None),
    ("sql-insert", lambda s, p, n: create_table(s, n),
     lambda s, p, n: s.sql(f"INSERT INTO {n} VALUES (1, 1), (2, 2)"), "write", "command", 2,
     ("table", "parquet", "Append")),
    ("sql-ctas", None,
     lambda s, p, n: s.sql(f"CREATE TABLE {n} USING parquet AS SELECT id FROM range(5)"),
     "write", "command", 5, ("table", "parquet", "ErrorIfExists")),
]


@pytest.mark.parametrize(("setup", "act", "action", "func", "rows", "output"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_action_is_exactly_one_step(spark: Any, trace: Handle, tmp_path: Path, unique: str,
                                         setup: Action | None, act: Action, action: str,
                                         func: str, rows: int | None,
                                         output: tuple | None) -> None:
    if setup is not None:
        setup(spark, tmp_path, unique)
    before = len(flushed_steps(trace))
    act(spark, tmp_path, unique)
    steps = flushed_steps(trace)
    assert len(steps) == before + 1, steps[["seq", "action", "spark_func"]]
    step = steps.iloc[-1]
    assert (step["action"], step["spark_func"], step["status"]) == (action, func, "SUCCEEDED")
    assert step["seq"] == before + 1
    if rows is not None:
        assert step["rows_out"] == rows
    if output is None:
        assert step["output"] is None
    else:
        got = step["output"]
        assert (got["kind"], got["format"], got["mode"]) == output
        assert unique in got["name"]
    # the only warnings: operators a limit stopped early (take, first, show, isEmpty, limit)
    assert [w for w in step["capture_warnings"] if "cut short" not in w] == []


def test_a_step_carries_its_context(spark: Any, trace: Handle) -> None:
    spark.range(10).filter("id > 2").collect(); line = inspect.currentframe().f_lineno  # noqa: E702
    step = flushed_steps(trace).iloc[-1]
    assert step["run_id"] == trace.run_id and step["schema_version"] == SCHEMA_VERSION
    assert step["app_id"] == spark.sparkContext.applicationId
    assert step["spark_version"] == spark.version and step["pipetrace_version"]
    assert step["user"] == spark.sparkContext.sparkUser()
    assert step["execution_id"] >= 0 and step["duration_ms"] >= 0
    assert step["started_at"] <= step["captured_at"]
    assert dict(step["tags"]) == {"suite": "pytest"}
    assert step["call_site"] == f"{__file__}:{line}"
    assert [dict(i) for i in step["inputs"]] == [
        {"kind": "range", "name": "range(0, 10, 1)", "format": None, "version": None,
         "path": None, "files": None, "bytes": None, "modified_max": None, "fingerprint": None}]
    assert step["output_schema"] == "id BIGINT NOT NULL"
    assert "Filter" in step["logical_plan"] and "Filter" in step["optimized_plan"]
    assert "Filter" in step["physical_plan"] and not step["plan_truncated"]
    assert len(step["plan_fingerprint"]) == 64


def test_data_handed_over_by_the_driver_is_a_local_input(spark: Any, trace: Handle,
                                                         tmp_path: Path) -> None:
    """createDataFrame of a list (PySpark parallelizes it into an RDD) reads the driver's own
    data: kind local, like data in the plan; an RDD over files stays kind rdd."""
    (tmp_path / "lines.txt").write_text("a\nb\nc\n")
    listed = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], ["id", "name"])
    assert len(listed.filter("id > 1").collect()) == 2
    sc = spark.sparkContext
    # (spark.createDataFrame, not rdd.toDF: toDF binds to the process's first session)
    parallel = sc.parallelize(range(5)).map(lambda x: (x,))
    assert spark.createDataFrame(parallel, ["x"]).count() == 5
    lines = sc.textFile(str(tmp_path / "lines.txt")).map(lambda x: (x,))
    assert spark.createDataFrame(lines, ["t"]).count() == 3
    steps = flushed_steps(trace)
    kinds = [[i["kind"] for i in inputs] for inputs in steps["inputs"]]
    assert kinds[-3:] == [["local"], ["local"], ["rdd"]], kinds


def test_a_failing_action_is_a_failed_step(spark: Any, trace: Handle) -> None:
    with pytest.raises(Exception, match="agent bug"):
        spark.range(5).select(F.raise_error(F.lit("agent bug in step 3"))).collect()
    step = flushed_steps(trace).iloc[-1]
    assert (step["action"], step["status"]) == ("collect", "FAILED")
    assert "agent bug in step 3" in step["error"]
    assert step["error"].startswith("org.apache.spark.")


def test_a_failing_write_is_a_failed_step(spark: Any, trace: Handle, tmp_path: Path) -> None:
    spark.range(3).write.parquet(str(tmp_path / "exists"))
    with pytest.raises(Exception, match="already exists"):
        spark.range(3).write.parquet(str(tmp_path / "exists"))
    steps = flushed_steps(trace)
    assert steps["status"].tolist() == ["SUCCEEDED", "FAILED"]
    assert steps["action"].tolist() == ["write", "write"]
    assert "already exists" in steps.iloc[-1]["error"]


@pytest.mark.parametrize("act", [
    lambda s, n: s.range(4).write.saveAsTable(n),
    lambda s, n: s.sql(f"CREATE TABLE {n} USING parquet AS SELECT 1 AS x").collect(),
    lambda s, n: s.sql("SHOW TABLES").collect(),
    lambda s, n: s.sql("SHOW TABLES").show(),
], ids=["saveAsTable", "ctas-collected", "show-tables-collected", "show-tables-shown"])
def test_nested_and_repeated_commands_are_one_step(spark: Any, trace: Handle, unique: str,
                                                   act: Callable[[Any, str], Any]) -> None:
    act(spark, unique)
    assert len(flushed_steps(trace)) == 1


def ops(step: pd.Series, name: str) -> list[dict]:
    return [dict(o) for o in step["operators"] if o["name"] == name]


VIP = {3, 7, 11, 19, 23, 42}


@pytest.mark.parametrize("broadcast", [True, False], ids=["broadcast-join", "sort-merge-join"])
def test_filter_and_join_rows_are_the_true_counts(spark: Any, trace: Handle,
                                                  broadcast: bool) -> None:
    expected_kept = sum(1 for i in range(1000) if i % 7 != 0)
    expected_joined = sum(1 for i in range(1000) if i % 7 != 0 and i % 50 in VIP)
    if not broadcast:
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        orders = spark.range(0, 1000).select(F.col("id").alias("order_id"),
                                             (F.col("id") % 50).alias("cust"))
        # vip is not derived from the join key, so the optimizer can't push it into orders.
        customers = spark.createDataFrame([(c, c in VIP) for c in range(50)], "cust long, vip boolean")
        kept = orders.filter(F.col("order_id") % 7 != 0); line = inspect.currentframe().f_lineno  # noqa: E702
        joined = kept.join(customers.filter(F.col("vip")), "cust")
        assert len(joined.collect()) == expected_joined
    finally:
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    step = flushed_steps(trace).iloc[-1]
    join_name = "BroadcastHashJoin" if broadcast else "SortMergeJoin"
    (join,) = ops(step, join_name)
    assert join["rows_out"] == expected_joined
    filters = {o["source"]: o["rows_out"] for o in ops(step, "Filter")}
    assert filters[f"{__file__}:{line}"] == expected_kept
    assert step["rows_out"] == expected_joined
    # Every operator hangs off the tree: one root, parents listed before children.
    ids = [o["id"] for o in step["operators"]]
    assert [o["parent_id"] for o in step["operators"]].count(None) == 1
    assert all(o["parent_id"] is None or o["parent_id"] in ids[: ids.index(o["id"])]
               for o in step["operators"])


def test_a_plan_node_that_cannot_be_read_costs_only_its_own_details(spark: Any,
                                                                   trace: Handle) -> None:
    """Plan node classes pipetrace does not know (Databricks-only nodes, newer Spark) may throw
    when read. A JVM-only fault switch makes the Filter node throw like one. Without the
    per-operator guard the step would lose every operator; without the listener's catch-all,
    the step itself."""
    system = spark.sparkContext._jvm.java.lang.System
    errors_before = trace.status()["listener_errors"]
    system.setProperty("pipetrace.faults.fail_node", "Filter")
    try:
        assert spark.range(100).filter("id % 2 = 0").count() == 50   # the job is unaffected
        trace.flush()
    finally:
        system.clearProperty("pipetrace.faults.fail_node")
    step = trace.steps().iloc[-1]
    assert (step["action"], step["status"], step["rows_out"]) == ("count", "SUCCEEDED", 50)
    names = [o["name"] for o in step["operators"]]
    assert {"Filter", "Range", "HashAggregate"} <= set(names)       # every operator is there
    (broken,) = ops(step, "Filter")
    assert broken["description"] is None and broken["rows_out"] is None
    assert ops(step, "Range")[0]["rows_out"] == 100                  # the others keep theirs
    (warning,) = step["capture_warnings"]
    assert "FilterExec" in warning and "injected fault" in warning    # marked partial
    assert trace.status()["listener_errors"] == errors_before + 1


def test_rerunning_a_dataframe_records_each_runs_own_counts(spark: Any, trace: Handle,
                                                           tmp_path: Path) -> None:
    limit_file = tmp_path / "limit"

    @F.udf("boolean")
    def below_limit(x):  # type: ignore[no-untyped-def]  # hints would make it a pandas UDF
        return x < int(limit_file.read_text())

    df = spark.range(100).filter(below_limit("id"))
    counts = []
    # Same DataFrame, same QueryExecution, input changing between runs; no flush in between,
    # so the listener handles run 1 while run 2 resets and refills the plan's metrics.
    for limit in (30, 70, 45):
        limit_file.write_text(str(limit))
        counts.append(len(df.collect()))
    assert counts == [30, 70, 45]
    steps = flushed_steps(trace)
    assert steps["rows_out"].tolist() == counts
    assert [ops(s, "Filter")[0]["rows_out"] for _, s in steps.iterrows()] == counts
    assert steps["execution_id"].is_unique


def test_plan_fingerprint_is_stable_and_tracks_the_logic(spark: Any, trace: Handle,
                                                         tmp_path: Path) -> None:
    def pipeline(threshold: int, out: Path) -> None:
        df = spark.range(50).withColumn("v", F.col("id") * 2).filter(F.col("v") > threshold)
        df.groupBy((F.col("id") % 3).alias("k")).count().write.parquet(str(out))

    pipeline(10, tmp_path / "a")
    pipeline(10, tmp_path / "b")   # same code, other output dir
    pipeline(11, tmp_path / "c")   # changed filter
    prints = flushed_steps(trace)["plan_fingerprint"].tolist()
    assert prints[0] == prints[1] and prints[2] != prints[0]


def test_attach_twice_is_one_listener(spark: Any, trace: Handle, tmp_path: Path) -> None:
    again = pipetrace.attach(spark, table=str(tmp_path / "pipeline_steps"))
    assert again is trace
    spark.range(3).count()
    assert len(flushed_steps(trace)) == 1


def test_detach_stops_capture(spark: Any, tmp_path: Path) -> None:
    handle = pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "spool"))
    spark.range(3).count()
    assert handle.detach().committed == 1
    spark.range(4).count()
    assert len(pipetrace.steps(handle.run_id, table=str(tmp_path / "t"))) == 1
    assert not any((tmp_path / "spool").rglob("seg-*"))
    assert handle.detach().committed == 0   # idempotent


def test_pipetraces_own_table_work_is_never_a_step(spark: Any, trace: Handle) -> None:
    for _ in range(3):
        spark.range(5).count()
        trace.flush()
    trace.steps()
    pipetrace.sql("SELECT count(*) FROM pipeline_steps", table=trace.table)
    assert len(flushed_steps(trace)) == 3


def test_plan_text_is_capped_with_a_marker(spark: Any, tmp_path: Path) -> None:
    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s"),
                          plan_max_chars=1000) as handle:
        df = spark.range(10)
        for i in range(60):
            df = df.withColumn(f"c{i}", F.col("id") + i)
        df.collect()
        step = flushed_steps(handle).iloc[-1]
    assert step["plan_truncated"]
    assert "[truncated by pipetrace at 1000 chars" in step["logical_plan"]
    assert len(step["logical_plan"]) < 1200
