"""pipeline_runs: one row per run beside pipeline_steps, checked against what the test knows.

The truth is computed here: the script's SHA-256 and text, its arguments and exit code, the
settings it set, the moments before and after the run, the steps the steps table holds.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow
import pytest
from deltalake import DeltaTable

import pipetrace
from pipetrace import run_record
from pipetrace.ingest import ingest
from pipetrace.runs_table import commit_record, runs_arrow_schema
from tests.test_faults import env_for

MASK = "*********(redacted)"
RUNS_SCHEMA = json.loads((Path(pipetrace.__file__).parent / "resources" / "runs_schema.json")
                         .read_text())

SCRIPT = """
import sys
from pyspark.sql import SparkSession, functions as F
DSN = "jdbc:postgresql://db/x?user=etl&password=Sup3rS3cretPw"
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "7").getOrCreate())
spark.conf.set("spark.sql.ansi.enabled", "false")
spark.conf.set("spark.sql.catalog.demo.token", "t0kenValue-123456")
spark.range(100).groupBy((F.col("id") % 3).alias("k")).count().collect()
print("rows", spark.range(10).count())
if sys.argv[1] == "fail":
    raise RuntimeError("boom")
"""


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipetrace", *args], env=env, text=True,
                          capture_output=True, timeout=300, check=False)


def _runs(table: Path) -> list[dict[str, Any]]:
    return DeltaTable(str(table)).to_pyarrow_table().to_pylist()


def _steps(table: Path, run_id: str) -> list[dict[str, Any]]:
    rows = DeltaTable(str(table)).to_pyarrow_table().to_pylist()
    return sorted((r for r in rows if r["run_id"] == run_id), key=lambda r: r["seq"])


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_pipetrace_run_records_the_run(tmp_path: Path, outcome: str) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = env_for(tmp_path / "home")
    argv = [outcome, "--password=hunter2hunter2", "--token", "abcdefgh12345", "--day", "7"]
    before = datetime.now(timezone.utc)
    run = _cli("run", "--run-id", f"runs-{outcome}", str(script), *argv, env=env)
    after = datetime.now(timezone.utc)
    assert run.returncode == (0 if outcome == "ok" else 1), run.stderr[-3000:]

    home = tmp_path / "home"
    runs = _runs(home / "pipeline_runs")
    assert len(runs) == 1
    row = runs[0]
    steps = _steps(home / "pipeline_steps", f"runs-{outcome}")
    assert row["run_id"] == f"runs-{outcome}" and row["mode"] == "run"
    assert row["status"] == ("SUCCEEDED" if outcome == "ok" else "FAILED")
    assert row["exit_code"] == (0 if outcome == "ok" else 1)
    assert row["end_reason"] is None
    # Session start to stop, not first to last action.
    assert before <= row["started_at"] <= steps[0]["started_at"]
    assert steps[-1]["captured_at"] <= row["ended_at"] <= after
    assert (row["steps"], row["failed_steps"]) == (len(steps), 0) == (2, 0)
    # The script as it ran, redacted where it holds a secret.
    text = script.read_text()
    assert row["script_path"] == str(script.resolve())
    assert row["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert "Sup3rS3cretPw" not in row["script_text"]
    # ... and a value the run set for a secret setting is masked wherever it appears.
    assert row["script_text"] == (text.replace("Sup3rS3cretPw", MASK)
                                  .replace("t0kenValue-123456", MASK))
    assert row["argv"] == [outcome, f"--password={MASK}", "--token", MASK, "--day", "7"]
    # The settings that change results, redacted.
    conf = dict(row["spark_conf"])
    assert conf["spark.sql.shuffle.partitions"] == "7"
    assert conf["spark.sql.ansi.enabled"] == "false"
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert conf["spark.sql.session.timeZone"]
    assert conf["spark.sql.catalog.demo.token"] == MASK
    assert not any("t0kenValue" in str(v) for v in conf.values())
    # Versions and who ran it.
    import pyspark

    assert row["spark_version"] == pyspark.__version__ == steps[0]["spark_version"]
    assert row["python_version"] == platform.python_version()
    assert dict(row["packages"])["pyarrow"] == pyarrow.__version__
    assert row["java_version"] and row["pipetrace_version"] == steps[0]["pipetrace_version"]
    assert row["user"] == steps[0]["user"] == getpass.getuser()
    assert row["host"] == socket.gethostname()
    assert row["app_id"] == steps[0]["app_id"]
    assert row["capture_warnings"] is None
    # The shipped audit query reads the record beside the steps.
    audit = _cli("audit", "run-record", "--run-id", f"runs-{outcome}", "--format", "json",
                 env=env)
    assert audit.returncode == 0, audit.stderr
    [record] = json.loads(audit.stdout)
    assert (record["steps_captured"], record["steps_in_table"]) == (2, 2)
    assert (record["status"], record["shuffle_partitions"], record["ansi_enabled"]) == (
        row["status"], "7", "false")
    assert record["script_sha256"] == row["script_sha256"]
    # The README's query of the record.
    queried = _cli("sql", "--format", "json", "SELECT run_id, status, exit_code, started_at, "
                   "ended_at, script_sha256 FROM pipeline_runs", env=env)
    assert queried.returncode == 0, queried.stderr
    assert [(r["run_id"], r["status"], r["exit_code"], r["script_sha256"])
            for r in json.loads(queried.stdout)] == [
        (row["run_id"], row["status"], row["exit_code"], row["script_sha256"])]
    # Committed once: ingesting again adds nothing, and the spool keeps nothing of the run.
    assert _cli("ingest", env=env).returncode == 0
    assert len(_runs(home / "pipeline_runs")) == 1
    assert not (home / "spool" / f"runs-{outcome}").exists()


def test_runs_table_is_append_only_with_comments(tmp_path: Path) -> None:
    run_dir = tmp_path / "spool" / "r1"
    run_record.write_start(run_dir, mode="run", argv=None)
    run_record.write_end(run_dir, status="SUCCEEDED", exit_code=0)
    assert commit_record(run_dir, str(tmp_path / "pipeline_steps"))
    dt = DeltaTable(str(tmp_path / "pipeline_runs"))
    assert dt.metadata().configuration["delta.appendOnly"] == "true"
    assert dt.metadata().name == "pipeline_runs"
    expected = {f["name"]: f["metadata"]["comment"] for f in RUNS_SCHEMA["fields"]}
    assert {f.name: f.metadata.get("comment") for f in dt.schema().fields} == expected
    assert all(f["metadata"].get("since") == 4 for f in RUNS_SCHEMA["fields"])
    assert pyarrow.schema(dt.schema().to_arrow()).names == runs_arrow_schema().names


def test_a_record_committed_before_a_crash_is_not_committed_again(tmp_path: Path) -> None:
    run_dir = tmp_path / "spool" / "r2"
    run_record.write_start(run_dir, mode="run", argv=["a"])
    run_record.write_end(run_dir, status="FAILED", exit_code=3)
    saved = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    steps_table = str(tmp_path / "pipeline_steps")
    assert commit_record(run_dir, steps_table)
    # The crash: the commit happened, the removal of the record's files did not.
    for name, data in saved.items():
        (run_dir / name).write_bytes(data)
    assert commit_record(run_dir, steps_table)
    rows = _runs(tmp_path / "pipeline_runs")
    assert [(r["run_id"], r["status"], r["exit_code"]) for r in rows] == [("r2", "FAILED", 3)]
    # No driver ever redacted argv: it is not recorded, and the row says why.
    assert rows[0]["argv"] is None
    assert "argv" in rows[0]["capture_warnings"][0]


def _runs_of(table: Path, run_id: str) -> list[dict[str, Any]]:
    if not (table / "_delta_log").is_dir():
        return []
    return [r for r in _runs(table) if r["run_id"] == run_id]


def test_attach_detach_writes_one_row(spark: Any, tmp_path: Path) -> None:
    steps_table = tmp_path / "pipeline_steps"
    before = datetime.now(timezone.utc)
    trace = pipetrace.attach(spark, table=str(steps_table), spool=str(tmp_path / "spool"),
                             run_id=f"att-{uuid.uuid4().hex[:6]}", tags={"suite": "runs"})
    old = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "3")
    try:
        spark.range(30).selectExpr("id % 2 AS k").groupBy("k").count().collect()
        trace.flush()
        assert _runs_of(tmp_path / "pipeline_runs", trace.run_id) == []  # not over yet
        spark.range(5).count()
        trace.flush()
        trace.detach()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old)
    after = datetime.now(timezone.utc)
    trace.detach()  # twice: nothing more
    ingest(spool=tmp_path / "spool", table=str(steps_table))
    rows = _runs_of(tmp_path / "pipeline_runs", trace.run_id)
    assert len(rows) == 1
    row = rows[0]
    steps = _steps(steps_table, trace.run_id)
    assert row["mode"] == "attach" and row["status"] == "SUCCEEDED" and row["exit_code"] is None
    assert before <= row["started_at"] <= steps[0]["started_at"]
    assert steps[-1]["captured_at"] <= row["ended_at"] <= after
    assert (row["steps"], row["failed_steps"]) == (len(steps), 0) == (2, 0)
    assert dict(row["spark_conf"])["spark.sql.shuffle.partitions"] == "3"
    assert dict(row["tags"]) == {"suite": "runs"}
    main = Path(sys.modules["__main__"].__file__ or "")
    assert row["script_path"] == str(main.resolve())
    assert row["script_sha256"] == hashlib.sha256(main.read_bytes()).hexdigest()
    assert row["argv"] == sys.argv or any(MASK in a for a in row["argv"])
    assert not (tmp_path / "spool" / trace.run_id).exists()


KILLED = """
import os, sys
import pipetrace
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
trace = pipetrace.attach(spark, table=sys.argv[1], spool=sys.argv[2], run_id="killed-1")
spark.range(12).count()
trace.flush()
print("flushed", flush=True)
if sys.argv[3] == "driver":  # the driver JVM dies too: nothing closes the run
    os.kill(spark.sparkContext._gateway.proc.pid, 9)
    spark.sparkContext._gateway.proc.wait()
os.kill(os.getpid(), 9)
"""


@pytest.mark.parametrize("killed", ["driver", "python"])
def test_a_run_whose_end_was_never_seen_gets_a_row_by_recovery(tmp_path: Path,
                                                               killed: str) -> None:
    """kill -9 of the Python process (its driver JVM then closes the run) or of both."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    table, spool = tmp_path / "pipeline_steps", tmp_path / "spool"
    env = env_for(tmp_path / "home")
    job = subprocess.run([sys.executable, str(script), str(table), str(spool), killed], env=env,
                         text=True, capture_output=True, timeout=300, check=False)
    assert "flushed" in job.stdout, job.stderr[-3000:]
    assert job.returncode == -9
    assert _runs_of(tmp_path / "pipeline_runs", "killed-1") == []
    for _ in range(2):  # recovering twice adds nothing
        done = _cli("recover", "--spool", str(spool), "--table", str(table), env=env)
        assert done.returncode == 0, done.stderr
    rows = _runs_of(tmp_path / "pipeline_runs", "killed-1")
    assert len(rows) == 1
    row = rows[0]
    assert row["mode"] == "attach" and row["status"] == "UNKNOWN"
    steps = _steps(table, "killed-1")
    if killed == "driver":
        assert row["ended_at"] is None and "never recorded" in row["end_reason"]
        assert row["steps"] is None
    else:  # the driver saw the end of its session, the Python side's outcome is unknown
        assert row["ended_at"] >= steps[-1]["captured_at"]
        assert "recorded no end" in row["end_reason"]
        assert (row["steps"], row["failed_steps"]) == (len(steps), 0) == (1, 0)
    assert row["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert row["started_at"] <= steps[0]["started_at"]
    assert row["spark_version"] and row["java_version"]
    assert not (spool / "killed-1").exists()
    shutil.rmtree(spool, ignore_errors=True)


def test_sparks_writer_commits_the_record_once(spark: Any, tmp_path: Path) -> None:
    """writer='spark' (here with the json format: Delta runs in the Delta lane)."""
    from pipetrace.spark_writer import recover_with_spark

    target = tmp_path / "steps_json"
    trace = pipetrace.attach(spark, table=str(target), spool=str(tmp_path / "spool"),
                             run_id=f"sw-{uuid.uuid4().hex[:6]}", writer="spark", format="json")
    spark.range(4).count()
    trace.flush()
    trace.detach()
    trace.detach()
    recover_with_spark(spark, table=str(target), spool=tmp_path / "spool", format="json")
    rows = [r.asDict() for r in spark.read.json(str(tmp_path / "steps_json_runs")).collect()]
    assert [(r["run_id"], r["mode"], r["status"], r["steps"]) for r in rows] == [
        (trace.run_id, "attach", "SUCCEEDED", 1)]
    assert not (tmp_path / "spool" / trace.run_id).exists()


CONF_ONLY = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
print("rows", spark.range(9).count())
"""


def test_a_run_captured_by_configuration_alone_gets_its_row(tmp_path: Path) -> None:
    """The init-script path: no Python side. The driver records the run (its end is the
    application's); the steps and the record wait in the spool for `pipetrace ingest`."""
    from pipetrace._jvm import LISTENER_CLASS, jar_path

    script = tmp_path / "job.py"
    script.write_text(CONF_ONLY)
    env = env_for(tmp_path / "home")
    env["PYSPARK_SUBMIT_ARGS"] = (
        f"--driver-class-path {jar_path()} "
        f"--conf spark.sql.queryExecutionListeners={LISTENER_CLASS} "
        f"--conf spark.pipetrace.spool={tmp_path / 'spool'} --conf spark.pipetrace.run_id=conf-1 "
        "--conf spark.pipetrace.tags=team=risk pyspark-shell")
    before = datetime.now(timezone.utc)
    job = subprocess.run([sys.executable, str(script)], env=env, text=True, capture_output=True,
                         timeout=300, check=False)
    after = datetime.now(timezone.utc)
    assert job.returncode == 0 and "rows 9" in job.stdout, job.stderr[-3000:]
    env.pop("PYSPARK_SUBMIT_ARGS")
    table = tmp_path / "audit" / "pipeline_steps"
    for _ in range(2):  # twice: one row
        done = _cli("ingest", "--spool", str(tmp_path / "spool"), "--table", str(table), env=env)
        assert done.returncode == 0, done.stderr
    [row] = _runs(tmp_path / "audit" / "pipeline_runs")
    steps = _steps(table, "conf-1")
    assert (row["run_id"], row["mode"], row["status"]) == ("conf-1", "conf", "UNKNOWN")
    assert "no view of its exit status" in row["end_reason"]
    # The Spark application's start and end bound the session.
    assert before <= row["started_at"] <= steps[0]["started_at"]
    assert steps[-1]["captured_at"] <= row["ended_at"] <= after
    assert dict(row["spark_conf"])["spark.sql.session.timeZone"] == "Asia/Tokyo"
    assert (row["steps"], row["failed_steps"]) == (len(steps), 0) == (1, 0)
    assert row["python_version"] is None and row["argv"] is None  # no Python side
    assert row["java_version"] and row["spark_version"] == steps[0]["spark_version"]
    assert dict(row["tags"]) == {"team": "risk"}


def test_a_script_that_never_starts_spark_still_gets_its_row(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import sys\nsys.exit(4)\n")
    env = env_for(tmp_path / "home")
    run = _cli("run", "--run-id", "nospark-1", str(script), "x", env=env)
    assert run.returncode == 4, run.stderr[-3000:]
    assert "dropped" not in run.stderr and "unconfirmed" not in run.stderr
    [row] = _runs(tmp_path / "home" / "pipeline_runs")
    assert (row["run_id"], row["mode"], row["status"], row["exit_code"]) == (
        "nospark-1", "run", "FAILED", 4)
    assert row["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    # No driver redacted the arguments: they are not recorded, and the row says so.
    assert row["argv"] is None and row["script_text"] is None
    assert "argv" in " ".join(row["capture_warnings"])
    assert row["spark_version"] is None and row["python_version"] == platform.python_version()
    assert not (tmp_path / "home" / "spool" / "nospark-1").exists()


def test_a_run_killed_before_its_driver_started_gets_its_row_by_recovery(tmp_path: Path) -> None:
    """kill -9 of `pipetrace run` and its script before Spark started: only the Python side's
    record is in the spool (no manifest); recovery still commits the run's row, once."""
    script = tmp_path / "slow_start.py"
    script.write_text("import sys, time\nprint('started', flush=True)\ntime.sleep(600)\n")
    env = env_for(tmp_path / "home")
    job = subprocess.Popen([sys.executable, "-m", "pipetrace", "run", "--run-id", "early-1",
                            str(script)], env=env, text=True, stdout=subprocess.PIPE,
                           start_new_session=True)
    try:
        assert job.stdout is not None and job.stdout.readline().strip() == "started"
    finally:
        os.killpg(job.pid, 9)
        job.wait(timeout=60)
    spool, table = tmp_path / "home" / "spool", tmp_path / "home" / "pipeline_steps"
    assert (spool / "early-1").is_dir() and not (spool / "early-1" / "run.json").exists()
    for _ in range(2):  # recovering twice adds nothing
        done = _cli("recover", "--table", str(table), env=env)
        assert done.returncode == 0, done.stderr
    [row] = _runs(tmp_path / "home" / "pipeline_runs")
    assert (row["run_id"], row["mode"], row["status"]) == ("early-1", "run", "UNKNOWN")
    assert row["ended_at"] is None and "never recorded" in row["end_reason"]
    assert row["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert row["argv"] is None and "argv" in " ".join(row["capture_warnings"])
    assert not (spool / "early-1").exists()
