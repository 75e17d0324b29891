"""End to end, as a user runs it: unmodified PySpark scripts in their own process, the real
CLI, the real listener jar, a real Delta table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyspark

from pipetrace._jvm import LISTENER_CLASS, jar_path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "agent_pipeline.py"


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipetrace", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPETRACE_", "PYSPARK_SUBMIT_ARGS"))}
    env.update(PIPETRACE_HOME=str(home), COLUMNS="200")
    return env


def test_pipetrace_run_captures_the_bundled_example(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    run = cli("run", "--run-id", "example-1", str(EXAMPLE), str(tmp_path / "work"), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    table = str(tmp_path / "home" / "pipeline_steps")
    assert f"run example-1: 12 steps captured into {table}" in run.stderr
    assert "1 action failed (seq 5): pipetrace steps example-1 shows the error" in run.stderr
    # The example's one failure is on purpose, and the terminal says so without a stack trace:
    # Spark's and PySpark's log lines (the failed task's trace, the JSON error line) are in the
    # run's log file, whose path ends the summary.
    assert "on purpose" in run.stdout
    assert "\tat org.apache" not in run.stderr and '"level": "ERROR"' not in run.stderr
    assert "[Stage " not in run.stderr  # no progress bar
    log = tmp_path / "home" / "logs" / "example-1.log"
    assert f"Spark's log: {log}" in run.stderr
    logged = log.read_text()
    assert "CAST_INVALID_INPUT" in logged
    if int(pyspark.__version__.split(".")[0]) >= 4:  # PySpark 3.5 has no JSON error logger
        assert "DataFrameQueryContextLogger" in logged

    rows = json.loads(cli("sql", "--format", "json",
                          "SELECT seq, action, status, rows_out FROM pipeline_steps "
                          "WHERE run_id = 'example-1' ORDER BY seq", env=env).stdout)
    # One step per action of the script (its ACTIONS constant), in order.
    assert [r["seq"] for r in rows] == list(range(1, 13))
    assert [r["action"] for r in rows] == [
        "write", "write", "count", "show", "collect", "count", "take", "toPandas", "write",
        "write", "collect", "isEmpty"]
    assert [r["status"] for r in rows].count("FAILED") == 1 and rows[4]["status"] == "FAILED"
    assert rows[2]["rows_out"] == 20_000

    steps = cli("steps", env=env)
    assert steps.returncode == 0
    assert "run example-1: 12 steps, 1 failed" in steps.stdout
    assert "CAST_INVALID_INPUT" in steps.stdout
    assert "loan_risk_features" in steps.stdout


SCRIPT = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
df = spark.range(40).filter("id % 4 = 0")
print("rows", df.count())
df.collect()
spark.stop()
"""


def test_configuration_only_capture_then_ingest(tmp_path: Path) -> None:
    """No pipetrace in the script and no table: steps wait in the spool for `pipetrace ingest`."""
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    spool = tmp_path / "spool"
    env = clean_env(tmp_path / "home")
    env["PYSPARK_SUBMIT_ARGS"] = (
        f"--driver-class-path {jar_path()} "
        f"--conf spark.sql.queryExecutionListeners={LISTENER_CLASS} "
        f"--conf spark.pipetrace.spool={spool} --conf spark.pipetrace.run_id=conf-run "
        "--conf spark.pipetrace.tags=team=risk,ticket=MV-7 pyspark-shell")
    job = subprocess.run([sys.executable, str(script)], env=env, text=True, capture_output=True,
                         timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "rows 10" in job.stdout
    assert list((spool / "conf-run").glob("seg-*.jsonl")), "steps wait in the spool"

    table = tmp_path / "audit"
    env.pop("PYSPARK_SUBMIT_ARGS")
    ingest = cli("ingest", "--spool", str(spool), "--table", str(table), env=env)
    assert ingest.returncode == 0, ingest.stderr
    rows = json.loads(cli("sql", "--table", str(table), "--format", "json",
                          "SELECT seq, action, rows_out, tags FROM pipeline_steps ORDER BY seq",
                          env=env).stdout)
    assert [(r["seq"], r["action"], r["rows_out"]) for r in rows] == [
        (1, "count", 10), (2, "collect", 10)]
    assert rows[0]["tags"] == {"team": "risk", "ticket": "MV-7"}
    # Ingesting again commits nothing twice.
    cli("ingest", "--spool", str(spool), "--table", str(table), env=env)
    again = json.loads(cli("sql", "--table", str(table), "--format", "json",
                           "SELECT count(*) AS n FROM pipeline_steps", env=env).stdout)
    assert again == [{"n": 2}]


HOOKED = """
import sys
from pyspark.sql import SparkSession, functions as F
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
df = spark.range(40).withColumn("g", F.col("id") % 4)
kept = df.filter(F.col("g") == 1)
kept.count()
kept.write.parquet(sys.argv[1])
spark.sql("SELECT 1").show()
print("main", __name__, sys.argv[1:])
spark.stop()
sys.exit(4)
"""


def test_pipetrace_run_names_each_actions_line_and_measures(tmp_path: Path) -> None:
    """The script runs with the wrappers installed: count, a write and show carry their lines;
    --measure-steps counts the filter; argv, __name__ and the exit code are the script's."""
    from deltalake import DeltaTable

    script = tmp_path / "job.py"
    script.write_text(HOOKED)
    env = clean_env(tmp_path / "home")
    table = tmp_path / "steps"
    run = cli("run", "--table", str(table), "--measure-steps", str(script),
              str(tmp_path / "out"), env=env)
    assert run.returncode == 4, run.stderr[-3000:]
    assert f"main __main__ ['{tmp_path / 'out'}']" in run.stdout
    steps = DeltaTable(str(table)).to_pandas().sort_values("seq")
    lines = {n: f"{script}:{n}" for n in range(1, 14)}
    assert list(zip(steps["action"], steps["call_site"], strict=True)) == [
        ("count", lines[7]), ("write", lines[8]), ("show", lines[9])]
    [population] = steps.iloc[0]["logical_steps"]
    assert (population["source"], population["rows_in"], population["rows_out"]) == (
        lines[6], 40, 10)
