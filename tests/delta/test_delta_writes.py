"""Writing Delta tables: every save, saveAsTable, CTAS, INSERT, MERGE, UPDATE, DELETE, OPTIMIZE,
RESTORE and VACUUM is exactly one step, naming its target, the version it committed, Delta's
operation and Delta's own commit metrics. Oracles: the rows each action must have changed,
computed here from the data the test wrote, and Delta's history (DESCRIBE HISTORY)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import pipetrace
from tests.conftest import flushed_steps


def history(spark: Any, table: str) -> dict[int, dict[str, Any]]:
    """Delta's history of ``table`` by version (operation, operationMetrics as ints)."""
    out = {}
    for r in spark.sql(f"DESCRIBE HISTORY {table}").collect():
        metrics = {k: int(v) for k, v in (r["operationMetrics"] or {}).items()}
        out[r["version"]] = {"operation": r["operation"], "metrics": metrics}
    return out


@pytest.fixture
def run(spark: Any, tmp_path: Path) -> Any:
    trace = pipetrace.attach(spark, table=str(tmp_path / "steps"), spool=str(tmp_path / "spool"),
                             run_id=f"dw-{uuid.uuid4().hex[:8]}")
    yield trace
    trace.detach()


def outputs(steps: Any) -> list[dict[str, Any]]:
    return [dict(o) for o in steps["output"]]


def test_each_delta_write_and_dml_is_one_step_with_delta_s_own_commit(spark: Any, run: Any,
                                                                      tmp_path: Path,
                                                                      unique: str) -> None:
    path = str(tmp_path / "events")
    target = f"delta.`{path}`"
    # The agent's actions, each with the rows it must change (known from the data written):
    spark.range(100).withColumnRenamed("id", "k").write.format("delta").save(path)        # +100
    spark.range(100, 150).withColumnRenamed("id", "k").write.format("delta").mode("append").save(path)
    spark.sql(f"UPDATE {target} SET k = k + 1000 WHERE k < 10")                            # 10 updated
    spark.sql(f"DELETE FROM {target} WHERE k >= 140")              # 140..149 and 1000..1009: 20
    src = spark.range(130, 145).withColumnRenamed("id", "k")   # 130..139 match, 140..144 new
    spark.sql(f"""MERGE INTO {target} t USING (SELECT id AS k FROM range(120, 125)) s
                  ON t.k = s.k WHEN MATCHED THEN DELETE""")                                # 5 deleted
    from delta.tables import DeltaTable

    (DeltaTable.forPath(spark, path).alias("t").merge(src.alias("s"), "t.k = s.k")
     .whenMatchedUpdate(set={"k": "s.k + 10000"}).whenNotMatchedInsertAll().execute())     # 10 up, 5 in
    spark.range(7).withColumnRenamed("id", "k").write.format("delta").mode("overwrite").save(path)
    spark.sql(f"CREATE TABLE {unique} USING delta AS SELECT k % 3 AS g, count(*) AS n "
              f"FROM {target} GROUP BY 1")                                                 # 3 groups
    spark.sql(f"INSERT INTO {unique} VALUES (7, 1), (8, 2)")                               # +2
    spark.range(4).selectExpr("id AS g", "id AS n").write.format("delta").mode("append") \
        .saveAsTable(unique)                                                               # +4
    spark.sql(f"OPTIMIZE {unique}")
    spark.sql(f"RESTORE TABLE {unique} TO VERSION AS OF 1")
    restored = spark.table(unique).count()
    spark.range(6).selectExpr("id AS g", "id AS n").write.format("delta").mode("overwrite") \
        .saveAsTable(unique)                                                               # 6 rows
    steps = flushed_steps(run)
    assert len(steps) == 14  # the agent's 14 actions: Delta's own queries are no steps
    steps = steps[steps["action"] == "write"]  # the count above is a read

    name = f"spark_catalog.default.{unique}"
    path_history = history(spark, target)
    table_history = history(spark, unique)
    assert restored == 5  # restored to version 1: the 3 groups + the 2 inserted rows
    out = outputs(steps)
    assert [o["operation"] for o in out][:12] == [
        "WRITE", "WRITE", "UPDATE", "DELETE", "MERGE", "MERGE", "WRITE",
        "CREATE TABLE AS SELECT", "WRITE", "WRITE", "OPTIMIZE", "RESTORE"]
    assert out[12]["operation"] in ("CREATE OR REPLACE TABLE AS SELECT", "REPLACE TABLE AS SELECT")
    assert [o["version"] for o in out] == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5]
    assert [(o["kind"], o["name"]) for o in out] == [("path", f"file:{path}")] * 7 + [
        ("table", name)] * 6
    assert {o["format"] for o in out} == {"delta"}
    # Each step's operation and metrics are exactly the commit Delta recorded at its version.
    for o, hist in zip(out, [path_history] * 7 + [table_history] * 6, strict=True):
        assert o["operation"] == hist[o["version"]]["operation"]
        assert dict(o["metrics"]) == hist[o["version"]]["metrics"]
    m = [dict(o["metrics"]) for o in out]
    assert (m[2]["numUpdatedRows"], m[3]["numDeletedRows"]) == (10, 20)
    assert m[4]["numTargetRowsDeleted"] == 5
    assert (m[5]["numTargetRowsUpdated"], m[5]["numTargetRowsInserted"]) == (10, 5)
    assert m[5]["numSourceRows"] == 15
    # Writes report the rows they wrote (Delta's numOutputRows); DML and maintenance report
    # theirs in the metrics only.
    assert steps["rows_out"].tolist()[:2] == [100, 50]
    assert [steps["rows_out"].iloc[i] for i in (6, 7, 8, 9, 12)] == [7, 3, 2, 4, 6]
    assert steps["rows_out"].iloc[[2, 3, 4, 5, 10, 11]].isna().all()
    assert len(steps) == 13
    assert all(not any("version unknown" in w for w in ws) for ws in steps["capture_warnings"])
    # The new output fields (a map of longs included) hash the same in the JVM and in Python.
    from pipetrace.verify import verify

    report = verify(table=str(tmp_path / "steps"))
    assert report.ok and report.rows == 14, report.breaks


def test_vacuum_is_one_step_and_delta_s_log_replay_is_never_a_step(spark: Any, run: Any,
                                                                    unique: str) -> None:
    # A checkpoint every 2 commits: resolving the table then replays a checkpoint with Spark
    # queries on the user's thread (Delta's work, not an action of the agent's).
    spark.sql(f"CREATE TABLE {unique} (k BIGINT) USING delta "
              "TBLPROPERTIES ('delta.checkpointInterval' = '2')")
    for start in (0, 10, 20):
        spark.range(start, start + 10).withColumnRenamed("id", "k").write.format("delta") \
            .mode("append").saveAsTable(unique)
    spark.sql(f"DELETE FROM {unique} WHERE k < 5")
    spark.sql("SET spark.databricks.delta.retentionDurationCheck.enabled = false")
    spark.sql(f"VACUUM {unique} RETAIN 0 HOURS")
    spark.sql("RESET spark.databricks.delta.retentionDurationCheck.enabled")
    left = spark.table(unique).count()
    steps = flushed_steps(run)

    assert left == 25
    # saveAsTable(mode="append") on a V2 catalog (Delta's) is Spark's "append"
    assert steps["spark_func"].tolist() == ["command", "append", "append", "append", "command",
                                            "command", "command", "command", "count"]
    vacuum = dict(steps["output"].iloc[6])
    hist = history(spark, unique)
    assert vacuum["operation"] == "VACUUM"
    assert vacuum["version"] == max(hist) and hist[max(hist)]["operation"] == "VACUUM END"
    assert dict(vacuum["metrics"])["numDeletedFiles"] == hist[max(hist)]["metrics"]["numDeletedFiles"]
    assert steps["rows_out"].iloc[-1] == 25


def test_capture_starts_no_spark_job(spark: Any, tmp_path: Path, unique: str) -> None:
    """Resolving a Delta write's commit reads the log's files, never a Spark job."""
    tracker = spark.sparkContext.statusTracker()
    trace = pipetrace.attach(spark, table=str(tmp_path / "steps"), spool=str(tmp_path / "spool"),
                             run_id=f"jobs-{unique}")
    try:
        spark.range(20).write.format("delta").saveAsTable(unique)
        spark.sql(f"UPDATE {unique} SET id = id + 1 WHERE id < 3")
        jobs = set(tracker.getJobIdsForGroup(None))
        steps = flushed_steps(trace)
        after = set(tracker.getJobIdsForGroup(None))
    finally:
        trace.detach()
    assert [dict(o)["version"] for o in steps["output"]] == [0, 1]
    assert after == jobs  # capture and commit resolution started no job of their own


def test_a_commit_by_another_writer_in_the_window_makes_the_version_null_with_a_reason(
        spark: Any, run: Any, tmp_path: Path) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    path = str(tmp_path / "shared")
    spark.range(3).write.format("delta").save(path)
    flag = tmp_path / "other-writer-done"

    def other_writer(k):
        # runs in a Python worker while the append is running: a commit inside its window
        if not flag.exists():
            flag.write_text("1")
            write_deltalake(path, pa.table({"id": pa.array([99], pa.int64())}), mode="append")
        return k

    from pyspark.sql.functions import udf

    bump = udf(other_writer, "bigint")
    spark.range(5).coalesce(1).select(bump("id").alias("id")).write.format("delta") \
        .mode("append").save(path)
    steps = flushed_steps(run)
    out = dict(steps["output"].iloc[-1])
    assert flag.exists()
    assert out["version"] is None and out["operation"] is None
    (warning,) = [w for w in steps["capture_warnings"].iloc[-1] if "version unknown" in w]
    assert "2 commits [1, 2]" in warning and "other writers" in warning
    # Delta's path write reports no row count of its own outside its commit: with the commit
    # unknown, rows_out is null with its reason too, not a guess.
    assert steps["rows_out"].isna().iloc[-1]
    assert any(w.startswith("rows_out unknown") for w in steps["capture_warnings"].iloc[-1])
