"""Spark's own writer (SparkSink) against a real local session, with formats local Spark has.

Delta itself is not installed here; these tests cover the mechanics shared with it: batching,
idempotency (event_id check for non-Delta formats), recursion guard, fallback to the spool.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pipetrace
from pipetrace.query import steps as delta_steps
from pipetrace.spark import Handle
from pipetrace.spark_writer import SparkWriter
from tests.test_faults import env_for


def _attach(spark: Any, tmp_path: Path, **kw: Any) -> Handle:
    kw.setdefault("run_id", f"sw-{uuid.uuid4().hex[:8]}")
    return pipetrace.attach(spark, spool=str(tmp_path / "spool"), **kw)


def test_spark_writer_commits_to_a_path_and_its_own_writes_are_not_steps(spark, tmp_path):
    target = str(tmp_path / "steps_parquet")
    trace = _attach(spark, tmp_path, table=target, writer="spark", format="parquet")
    try:
        assert isinstance(trace._writer, SparkWriter) and trace.writer == "spark"
        spark.range(10).count()
        spark.range(5).collect()
        first = trace.flush()
        assert first.committed == 2
        # A second flush commits nothing new: the writer's own reads/writes are never steps.
        assert trace.flush().committed == 0
        frame = trace.steps()
        assert frame["action"].tolist() == ["count", "collect"]
        assert frame["seq"].tolist() == [1, 2]
        assert trace.status()["sink_failures"] == 0
    finally:
        trace.detach()
    # steps() reads through pipetrace's own session: reading the table back is not a step.
    written = spark.read.parquet(target).orderBy("seq").select("action").collect()
    assert [r.action for r in written] == ["count", "collect"]


def test_catalog_table_is_created_from_the_shared_schema(spark, tmp_path, unique):
    name = f"spark_catalog.default.{unique}"
    trace = _attach(spark, tmp_path, table=name, writer="spark", format="parquet")
    try:
        spark.range(3).count()
        assert trace.flush().committed == 1
    finally:
        trace.detach()
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
    assert props["delta.appendOnly"] == "true"
    described = {r["col_name"]: r for r in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()}
    assert "one row per Spark action" in described["Comment"]["data_type"]
    assert described["run_id"]["comment"].startswith("the run this step belongs to")
    assert spark.table(name).count() == 1
    spark.sql(f"DROP TABLE {name}")


def test_a_retried_batch_never_duplicates(spark, tmp_path):
    run_id = f"sw-{uuid.uuid4().hex[:8]}"
    target = str(tmp_path / "steps_json")
    spooled = _attach(spark, tmp_path, run_id=run_id, table=target, writer="spool")
    spark.range(4).count()
    spark.range(6).count()
    spooled.flush()
    spooled.detach()
    run_dir = tmp_path / "spool" / run_id
    segments = sorted(run_dir.glob("seg-*.jsonl"))
    assert segments, "steps stay in the spool with writer='spool'"
    saved = tmp_path / "saved"
    saved.mkdir()
    for seg in segments:
        shutil.copy(seg, saved / seg.name)

    trace = _attach(spark, tmp_path, run_id=run_id, table=target, writer="spark", format="json")
    try:
        assert trace.flush().committed == 2
        assert not list(run_dir.glob("seg-*.jsonl"))
        # A crash between commit and cleanup: the same segments come back and are retried.
        for seg in saved.iterdir():
            shutil.copy(seg, run_dir / seg.name)
        assert trace.flush().committed == 0
        assert trace.status()["sink_duplicates_skipped"] == 2
    finally:
        trace.detach()
    assert spark.read.json(target).where(f"run_id = '{run_id}'").count() == 2


def test_a_failing_writer_leaves_steps_in_the_spool_for_ingest(spark, tmp_path):
    run_id = f"sw-{uuid.uuid4().hex[:8]}"
    trace = _attach(spark, tmp_path, run_id=run_id, table=str(tmp_path / "nowhere"),
                    writer="spark", format="no_such_format")
    try:
        spark.range(7).count()  # the job is not affected
        result = trace.flush()
        assert result.committed == 0
        status = trace.status()
        assert status["sink_failures"] >= 1
        assert "no_such_format" in status["sink_last_error"]
    finally:
        trace.detach()
    assert list((tmp_path / "spool" / run_id).glob("seg-*.jsonl"))
    # The run's own table path: delta-rs commits what Spark's writer could not.
    table = str(tmp_path / "nowhere")
    done = subprocess.run([sys.executable, "-m", "pipetrace", "ingest", "--spool",
                           str(tmp_path / "spool"), "--table", table, "--run-id", run_id],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert delta_steps(run_id, table=table)["rows_out"].tolist() == [7]


def test_auto_uses_delta_rs_for_a_local_path(spark, tmp_path):
    trace = _attach(spark, tmp_path, table=str(tmp_path / "local"))
    try:
        assert type(trace) is Handle
        spark.range(2).count()
        assert trace.flush().committed == 1
    finally:
        trace.detach()


CONCURRENT_JOB = """
import sys, time
from pathlib import Path
import pipetrace
from pyspark.sql import SparkSession
table, run_id, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
trace = pipetrace.attach(spark, table=table, run_id=run_id, writer="spark", format="parquet")
print("ready", flush=True)
while not go.exists():
    time.sleep(0.01)
df = spark.range(100)
for i in range(12):
    df.filter(f"id >= {i}").count()
    if i % 3 == 2:
        trace.flush()   # a Spark commit to the shared table while the others commit too
trace.detach()
s = trace.status()
print("sink", s["sink_committed_steps"], s["sink_failures"], s["sink_duplicates_skipped"],
      flush=True)
"""


def test_three_drivers_commit_to_one_table_with_sparks_writer_without_loss(tmp_path):
    """Three driver JVMs (each a JVM on the suite's 2 cores) commit their runs into one table
    at the same time with Spark's writer.
    Parquet has no transaction log: a concurrent job's cleanup can delete another's staging
    files, so commits fail now and then. Without the retry from the spool and the event_id
    check, that loses or duplicates steps; with them every step lands exactly once. (Delta's
    optimistic concurrency makes blind appends conflict-free; only Databricks can show that.)"""
    table, go = tmp_path / "steps_parquet", tmp_path / "go"
    (tmp_path / "job.py").write_text(CONCURRENT_JOB)
    procs = []
    drivers = 3
    for p in range(drivers):
        home = tmp_path / f"driver-{p}"
        home.mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, str(tmp_path / "job.py"), str(table), f"par-{p}", str(go)],
            cwd=home, env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()[-3000:] if proc.stderr else line
    go.touch()
    outcomes = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * drivers, [e[-3000:] for _, e in outcomes]
    # Read the parquet files with pyarrow: a reader independent of the drivers that wrote them.
    import pyarrow.dataset as ds

    rows = ds.dataset(str(table), format="parquet").to_table(
        columns=["run_id", "seq", "event_id"]).to_pylist()
    assert len(rows) == 12 * drivers and len({r["event_id"] for r in rows}) == 12 * drivers
    for p in range(drivers):
        assert sorted(r["seq"] for r in rows if r["run_id"] == f"par-{p}") == list(range(1, 13))
    for p in range(drivers):
        assert not any((tmp_path / f"driver-{p}" / "spool").rglob("seg-*")), p
    # Per driver: steps its Spark writer committed, failed commits (retried), and steps a retry
    # found already in the table (a commit that failed after its files had landed).
    sinks = [[int(x) for x in out.split("sink ")[1].split()] for out, _ in outcomes]
    print(f"spark writer, {drivers} drivers (committed, failed commits, already there):", sinks)
    assert [committed + already for committed, _, already in sinks] == [12] * drivers


def test_a_corrupt_segment_is_quarantined_and_the_rest_committed(spark, tmp_path):
    """Spark's FAILFAST JSON reader failed the whole batch on one bad line, forever; the bad
    segment now goes to quarantine/ (as with delta-rs) and the run's other steps are written."""
    target = str(tmp_path / "steps_parquet")
    trace = _attach(spark, tmp_path, table=target, writer="spark", format="parquet")
    try:
        spark.range(3).count()
        assert trace.flush().committed == 1
        run_dir = Path(trace.status()["spool_dir"])
        (run_dir / "seg-000001.jsonl").write_text('{"seq": 1, "run_id": "torn\n')
        spark.range(4).count()
        flushed = trace.flush()
        assert flushed.error is None   # (the background committer may have done the commit)
        assert trace.steps()["rows_out"].tolist() == [3, 4], (trace.status(),
                                                              sorted(p.name for p in run_dir.iterdir()))
        assert trace.status()["sink_quarantined_segments"] == 1
        reason = (run_dir / "quarantine" / "seg-000001.jsonl.reason").read_text()
        assert "not valid JSON" in reason
    finally:
        trace.detach()
