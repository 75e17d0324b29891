"""Spark's own writer (``writer="spark"``, SparkSink) on real Delta: the table it creates, the
transaction ids and anchors of its commits, kill -9 at every stage followed by recovery,
concurrent drivers, both engines reading each other's tables, and catalog errors.

The oracle is what the driver's actions produced (event_id, seq) and the real ``_delta_log``.
Drivers are subprocesses only where a kill or a second driver is the point; they get the
lane's Spark settings (conftest.delta_conf). A catalog table shared by the test's session and a
driver (one metastore, as on a cluster) is emulated by registering the same table location
under the same name in the driver's in-memory catalog.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from conftest import delta_conf
from deltalake import DeltaTable

import pipetrace
from pipetrace import spool as sp
from pipetrace.schema import table_description, table_properties
from pipetrace.spark_writer import recover_with_spark
from tests.test_faults import env_for, spooled_event_ids, table_rows, wait_writer_gone

SCHEMA = json.loads((Path(pipetrace.__file__).parent / "resources" / "schema.json").read_text())


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The pipetrace CLI in a subprocess, on the lane's PYTHONPATH (its pyspark and Delta)."""
    return subprocess.run([sys.executable, "-m", "pipetrace", *args],
                          env={**env_for(home), "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
                          capture_output=True, text=True, timeout=120)

DRIVER = """
import json, os, sys, time
from pathlib import Path
from pyspark.sql import SparkSession
import pipetrace

conf, mode, table, spool, run_id, extra = json.loads(sys.argv[1]), *sys.argv[2:7]
builder = SparkSession.builder
for key, value in conf.items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
if mode.startswith("catalog-"):  # the test's catalog table: same name, same files
    extra, files = extra.split("|")
    spark.sql(f"CREATE TABLE {table} USING delta LOCATION '{files}'")
trace = pipetrace.attach(spark, table=table, spool=spool, run_id=run_id, writer="spark")
df = spark.range(50)


def actions(first, count):
    for i in range(first, first + count):
        df.filter(f"id >= {i}").count()
        print(f"done {i + 1}", flush=True)


if mode == "concurrent":
    print("ready", flush=True)
    while not Path(extra).exists():
        time.sleep(0.001)
    for batch in range(2):
        actions(batch * 3, 3)
        assert trace.flush().error is None, trace.status()
    result = trace.detach()
    assert result.error is None and not result.timed_out, result
elif mode == "mid-capture":
    actions(0, 200)
else:  # path-/catalog- before-commit / after-commit
    actions(0, 4)
    first = trace.flush()
    assert first.error is None and not first.timed_out, first
    stage = mode.split("-", 1)[1]
    spark._jvm.java.lang.System.setProperty("pipetrace.faults.pause_sink", f"{stage}:{extra}")
    actions(4, 4)
    trace._bridge.flush(run_id, 60000)  # every step spooled and sealed, nothing committed
    trace.flush(timeout=2)              # the commit stops at the stage; returns timed out
    # Steps captured after the interrupted commit: recovery must commit these once and skip
    # the segments the interrupted commit may have put in the table.
    actions(8, 2)
    trace._bridge.flush(run_id, 60000)
    print("spooled", flush=True)
    time.sleep(600)  # killed by the test
"""


def delta_log(table: Path) -> list[list[dict[str, Any]]]:
    """The actions of each commit of a Delta table, by version."""
    files = sorted((table / "_delta_log").glob("*.json"))
    return [[json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            for f in files]


def location(spark: Any, name: str) -> Path:
    raw = spark.sql(f"DESCRIBE DETAIL {name}").collect()[0]["location"]
    return Path(raw.removeprefix("file:"))


def start_driver(tmp_path: Path, warehouse: Path, mode: str, table: str, spool: Path,
                 run_id: str, extra: str) -> subprocess.Popen[str]:
    script = tmp_path / "driver.py"
    if not script.exists():
        script.write_text(DRIVER)
    home = tmp_path / f"home-{run_id}"
    home.mkdir()
    env = env_for(home)
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # the lane's pyspark, delta, worktree
    conf = {**delta_conf(warehouse), "spark.master": "local[1]"}
    return subprocess.Popen(
        [sys.executable, str(script), json.dumps(conf), mode, table, str(spool), run_id, extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)  # its own process group: the kill takes Python and its JVM


def new_run_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_spark_writer_creates_the_table_and_commits_with_txn_ids_and_anchors(
        spark: Any, tmp_path: Path, unique: str) -> None:
    """Into a Delta path and a catalog table: the shared schema's comments and the table's
    properties are in the Delta metadata; each commit carries txn (pipetrace/<run_id>,
    increasing versions) and the anchor of its last step as userMetadata."""
    name = f"spark_catalog.default.{unique}"
    for table in (str(tmp_path / "steps"), name):
        run_id = new_run_id("txn")
        trace = pipetrace.attach(spark, table=table, spool=str(tmp_path / "spool"),
                                 run_id=run_id, writer="spark")
        try:
            assert trace.writer == "spark" and trace.format == "delta"
            spark.range(10).count()
            first = trace.flush()
            spark.range(5).collect()
            spark.range(3).count()
            second = trace.flush()
            assert (first.error, second.error) == (None, None), trace.status()
            assert (first.committed, second.committed) == (1, 2)
            assert trace.steps()["action"].tolist() == ["count", "collect", "count"]
        finally:
            trace.detach()
        path = Path(table) if table.startswith("/") else location(spark, name)
        commits = delta_log(path)
        meta = next(a["metaData"] for a in commits[0] if "metaData" in a)
        fields = {f["name"]: f for f in json.loads(meta["schemaString"])["fields"]}
        for field in SCHEMA["fields"]:
            assert fields[field["name"]]["metadata"]["comment"] == field["metadata"]["comment"]
            assert fields[field["name"]]["nullable"] == field["nullable"], field["name"]
        assert meta["description"] == table_description()
        assert meta["configuration"]["delta.appendOnly"] == "true"
        for key, value in table_properties().items():
            if key != "delta.dataSkippingStatsColumns":
                assert meta["configuration"][key] == value
        # Spark's Delta keeps no statistics for booleans and refuses to create a table that
        # lists one: the shared list less plan_truncated.
        shared = table_properties()["delta.dataSkippingStatsColumns"].split(",")
        assert meta["configuration"]["delta.dataSkippingStatsColumns"].split(",") == \
            [c for c in shared if c != "plan_truncated"]
        rows = {r["seq"]: r for r in spark.read.format("delta").load(str(path))
                .where(f"run_id = '{run_id}'").collect()}
        writes = [c for c in commits if any("add" in a for a in c)]
        assert len(writes) == 2, "one Delta commit per flushed batch"
        versions, last_seqs = [], [1, 3]
        for commit, last_seq in zip(writes, last_seqs, strict=True):
            txns = [a["txn"] for a in commit if "txn" in a]
            assert [t["appId"] for t in txns] == [f"pipetrace/{run_id}"]
            versions.append(txns[0]["version"])
            info = next(a["commitInfo"] for a in commit if "commitInfo" in a)
            anchor = json.loads(info["userMetadata"])["pipetrace_anchor"]
            assert anchor["run_id"] == run_id and anchor["seq"] == last_seq
            assert anchor["row_hash"] == rows[last_seq]["row_hash"]
        assert versions[0] < versions[1]
    # Append-only is enforced by Delta itself, not only declared.
    try:
        spark.sql(f"DELETE FROM {name}")
        raise AssertionError("DELETE on an append-only pipeline_steps table succeeded")
    except Exception as exc:  # noqa: BLE001 - pyspark's AnalysisException / Py4JJavaError
        assert "appendOnly" in str(exc) or "append-only" in str(exc).lower(), exc
    spark.sql(f"DROP TABLE {name}")


def _catalog_table_with_a_row(spark: Any, tmp_path: Path, name: str) -> Path:
    """A catalog table pipetrace created (one step of another run); its location."""
    with pipetrace.attach(spark, table=name, spool=str(tmp_path / "setup-spool"),
                          run_id=new_run_id("setup"), writer="spark") as trace:
        spark.range(1).count()
        assert trace.flush().committed == 1
    return location(spark, name)


def test_kill_9_at_each_stage_then_recovery_commits_every_step_once(
        spark: Any, tmp_path: Path, warehouse: Path, unique: str) -> None:
    """Without open-segment recovery, mid-capture loses the last steps; without per-segment
    txn versions after a crash, after-commit commits the interrupted batch a second time."""
    name = f"spark_catalog.default.{unique}"
    catalog_dir = _catalog_table_with_a_row(spark, tmp_path, name)
    cases: dict[str, dict[str, Any]] = {}
    for mode in ("mid-capture", "path-before-commit", "catalog-after-commit"):
        spool = tmp_path / f"spool-{mode}"
        table = name if mode.startswith("catalog") else str(tmp_path / f"steps-{mode}")
        run_id = new_run_id(mode)
        marker = tmp_path / f"paused-{mode}"
        extra = f"{marker}|{catalog_dir}" if mode.startswith("catalog") else str(marker)
        proc = start_driver(tmp_path, warehouse, mode, table, spool, run_id, extra)
        cases[mode] = dict(proc=proc, spool=spool, table=table, run_id=run_id, marker=marker)
    for mode, case in cases.items():
        proc = case["proc"]
        assert proc.stdout is not None
        wanted = "done 8" if mode == "mid-capture" else "spooled"
        for line in proc.stdout:
            if line.strip() == wanted:
                break
        else:
            raise AssertionError(f"{mode}: driver ended early: {proc.communicate()[1][-3000:]}")
        if mode != "mid-capture":
            deadline = time.monotonic() + 60
            while not case["marker"].exists():  # the writer's explicit signal: it is paused
                assert time.monotonic() < deadline, f"{mode}: the commit never paused"
                time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, f"{mode}: the fault was not injected"
    report = {}
    for mode, case in cases.items():
        spool, table, run_id = case["spool"], case["table"], case["run_id"]
        wait_writer_gone(spool, run_id)
        if mode.startswith("catalog"):
            before = {r.event_id for r in spark.table(name).where(f"run_id = '{run_id}'")
                      .select("event_id").collect()}
        else:
            before = {r["event_id"] for r in table_rows(Path(table))}
        expected = before | spooled_event_ids(spool)
        assert expected, f"{mode}: no step reached the spool before the kill"
        if mode != "mid-capture":
            assert len(expected) == 10, f"{mode}: the driver's 10 actions are not all there"
        started = time.monotonic()
        if mode == "mid-capture":
            # delta-rs recovers what Spark's writer left: the same transaction ids
            done = cli(tmp_path, "recover", "--spool", str(spool), "--table", table)
            assert done.returncode == 0, done.stderr
        elif mode == "catalog-after-commit":
            # The CLI cannot reach a catalog: it says how to commit, and touches nothing.
            spooled = spooled_event_ids(spool)
            refused = cli(tmp_path, "ingest", "--spool", str(spool), "--table", table)
            assert refused.returncode == 2, refused.stderr
            assert "recover_with_spark(spark, table=" in refused.stderr, refused.stderr
            assert spooled_event_ids(spool) == spooled
            result = recover_with_spark(spark, table=table, spool=spool)
            assert result.runs == [run_id]
        else:
            # The next capture of the same table with Spark's writer takes over the dead run.
            with pipetrace.attach(spark, table=table, spool=str(spool), writer="spark",
                                  run_id=new_run_id("next")) as trace:
                assert trace.flush().error is None
        took = time.monotonic() - started
        frame = (spark.table(name) if mode.startswith("catalog")
                 else spark.read.format("delta").load(table))
        rows = frame.where(f"run_id = '{run_id}'").select("event_id", "seq").collect()
        ids = [r.event_id for r in rows]
        assert len(ids) == len(set(ids)), f"{mode}: duplicated steps"
        assert set(ids) == expected, f"{mode}: lost {len(expected - set(ids))} steps"
        assert sorted(r.seq for r in rows) == list(range(1, len(rows) + 1)), mode
        assert not (spool / run_id).exists(), f"{mode}: run left in the spool"
        report[mode] = (len(expected), len(ids), round(took, 2))
    print("kill -9 with writer=spark (expected, found, seconds to recover):", report)
    spark.sql(f"DROP TABLE {name}")


def test_four_drivers_append_through_sparks_writer_without_loss_or_duplicates(
        tmp_path: Path, warehouse: Path) -> None:
    """Delta's optimistic concurrency: blind appends of four drivers (and their racing
    CREATE TABLE) neither conflict into a lost batch nor commit one twice."""
    table, spool, go = tmp_path / "steps", tmp_path / "spool", tmp_path / "go"
    procs = {new_run_id(f"conc{p}"): None for p in range(4)}
    for run_id in procs:
        procs[run_id] = start_driver(tmp_path, warehouse, "concurrent", str(table), spool,
                                     run_id, str(go))
    for proc in procs.values():
        assert proc is not None and proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "ready", proc.communicate()[1][-3000:]
    go.touch()
    outcomes = {r: p.communicate(timeout=300) for r, p in procs.items() if p is not None}
    assert [p.returncode for p in procs.values() if p is not None] == [0, 0, 0, 0], \
        [err[-3000:] for _, err in outcomes.values()]
    rows = table_rows(table)
    assert len(rows) == 24 and len({r["event_id"] for r in rows}) == 24
    for run_id in procs:
        assert sorted(r["seq"] for r in rows if r["run_id"] == run_id) == list(range(1, 7))
    commits = [c for c in delta_log(table) if any("add" in a for a in c)]
    assert len(commits) >= 8, "each driver's two flushes are commits of their own"


def test_each_engine_reads_the_table_the_other_wrote(spark: Any, tmp_path: Path) -> None:
    """delta-rs -> Spark, Spark -> delta-rs, and the CLI (delta-rs) on the table Spark wrote:
    sql, steps and verify (the anchors Spark's writer put in the log are found)."""
    by_rs, by_spark = tmp_path / "by_delta_rs", tmp_path / "by_spark"
    written = {}
    for table, writer in ((by_rs, "delta-rs"), (by_spark, "spark")):
        run_id = new_run_id(writer)
        with pipetrace.attach(spark, table=str(table), spool=str(tmp_path / "spool"),
                              run_id=run_id, writer=writer) as trace:
            spark.range(7).count()
            spark.range(4).collect()
            try:
                spark.sql("SELECT * FROM no_such_table_anywhere").collect()
            except Exception:  # noqa: BLE001 - a failed action is a step too
                pass
            assert trace.flush().error is None
        written[writer] = run_id
    columns = ["event_id", "seq", "action", "status", "rows_out", "row_hash", "prev_hash"]
    for table in (by_rs, by_spark):
        via_rs = sorted(DeltaTable(str(table)).to_pyarrow_table(columns=columns).to_pylist(),
                        key=lambda r: r["seq"])
        via_spark = [r.asDict() for r in spark.read.format("delta").load(str(table))
                     .select(*columns).orderBy("seq").collect()]
        assert via_rs == via_spark, table
        assert [r["rows_out"] for r in via_rs][:2] == [7, 4]
        assert [r["status"] for r in via_rs] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    # Spark's writer appends to a table delta-rs created (one table, both writers).
    with pipetrace.attach(spark, table=str(by_rs), spool=str(tmp_path / "spool"),
                          run_id=new_run_id("spark-on-rs"), writer="spark") as trace:
        spark.range(2).count()
        result = trace.flush()
        assert (result.error, result.committed) == (None, 1), trace.status()
    assert len(table_rows(by_rs)) == 4

    run_id = written["spark"]
    out = cli(tmp_path, "sql", "--table", str(by_spark), "--format", "json",
              "SELECT action, rows_out FROM pipeline_steps ORDER BY seq")
    assert out.returncode == 0, out.stderr
    assert [(r["action"], r["rows_out"]) for r in json.loads(out.stdout)][:2] == \
        [("count", 7), ("collect", 4)]
    out = cli(tmp_path, "steps", "--table", str(by_spark), run_id)
    assert out.returncode == 0, out.stderr
    assert f"run {run_id}: 3 steps, 1 failed" in out.stdout
    out = cli(tmp_path, "verify", "--table", str(by_spark))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 run(s), 3 rows checked" in out.stdout and "intact" in out.stdout
    assert "no anchor" not in out.stderr, out.stderr


def test_a_missing_catalog_or_schema_is_said_plainly_and_the_steps_wait(
        spark: Any, tmp_path: Path, unique: str) -> None:
    """The flush result, status() and `pipetrace status` say what is missing and what to
    do; the steps stay in the spool, and once the schema exists they are committed once."""
    schema = f"s_{unique}"
    cases = {f"nosuch_{unique}.audit.pipeline_steps": f"no catalog `nosuch_{unique}`",
             f"spark_catalog.{schema}.pipeline_steps":
                 f"schema `spark_catalog`.`{schema}` does not exist"}
    for table, said in cases.items():
        spool = tmp_path / f"spool-{table.split('.')[0]}"
        run_id = new_run_id("missing")
        trace = pipetrace.attach(spark, table=table, spool=str(spool), run_id=run_id,
                                 writer="spark")
        spark.range(3).count()
        spark.range(2).collect()
        result = trace.flush()
        assert result.error is not None and said in result.error, result.error
        assert "CREATE SCHEMA" in result.error or "configure the catalog" in result.error
        assert said in trace.status()["sink_last_error"]
        assert trace.status()["sink_failures"] >= 1
        status = cli(tmp_path, "status", "--spool", str(spool), "--format", "json")
        assert status.returncode == 0, status.stderr
        [listed] = json.loads(status.stdout)
        assert said in listed["last_error"] and listed["pending_steps"] == 2
        trace.detach()
        assert len(spooled_event_ids(spool)) == 2, "the steps wait in the spool"
    table = f"spark_catalog.{schema}.pipeline_steps"
    spool = tmp_path / "spool-spark_catalog"
    spark.sql(f"CREATE SCHEMA {schema}")
    try:
        waiting = spooled_event_ids(spool)
        first = recover_with_spark(spark, table=table, spool=spool)
        again = recover_with_spark(spark, table=table, spool=spool)
        assert (first.steps, again.steps) == (2, 0)
        ids = [r.event_id for r in spark.table(table).select("event_id").collect()]
        assert sorted(ids) == sorted(waiting)
        assert not list(sp.list_runs(spool)), "the committed run left the spool"
    finally:
        spark.sql(f"DROP SCHEMA {schema} CASCADE")
