"""The pipetrace command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from spool_helpers import lines, make_run, make_steps

from pipetrace import runner
from pipetrace._jvm import LISTENER_CLASS
from pipetrace.errors import JarNotFoundError
from pipetrace.ingest import ingest

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"

# Stands in for the driver JVM: reads the confs `pipetrace run` passes, spools the steps of
# argv[1] (one sealed segment, then an .open one with a torn tail, as if killed), exits argv[2].
FAKE_SPARK_SCRIPT = """
import json, os, shlex, sys
from pathlib import Path
args = shlex.split(os.environ["PYSPARK_SUBMIT_ARGS"])
conf = dict(a.split("=", 1) for a in args if a.startswith("spark."))
Path(sys.argv[3]).write_text(os.environ["PYSPARK_SUBMIT_ARGS"])
run = Path(conf["spark.pipetrace.spool"]) / conf["spark.pipetrace.run_id"]
run.mkdir(parents=True, exist_ok=True)  # as the JVM: `pipetrace run` made it
(run / "writer.lock").touch()
(run / "run.json").write_text(json.dumps({"run_id": run.name, "schema_version": 1,
                                          "table": conf["spark.pipetrace.table"]}))
steps = Path(sys.argv[1]).read_text().splitlines(keepends=True)
(run / "seg-000001.jsonl").write_text("".join(steps[:2]))
(run / "seg-000002.jsonl.open").write_text("".join(steps[2:]) + '{"seq": 9')
print("hello from the script")
sys.exit(int(sys.argv[2]))
"""


def pipetrace(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PIPETRACE_TABLE", "PIPETRACE_SPOOL", "PYSPARK_SUBMIT_ARGS")}
    env.update(PIPETRACE_HOME=str(home), COLUMNS="200",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PYTHON_DIR), env.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "pipetrace", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A PIPETRACE_HOME whose default spool holds run r1 (4 golden steps), not yet ingested."""
    make_run(tmp_path / "spool", "r1", table=None, segments=[make_steps("r1", 4)])
    return tmp_path


@pytest.fixture
def ingested(home: Path) -> Path:
    assert pipetrace("ingest", home=home).returncode == 0
    return home


def test_version() -> None:
    result = pipetrace("--version", home=Path("/nonexistent"))
    assert result.returncode == 0 and result.stdout.startswith("pipetrace ")


def test_ingest_reports_committed_skipped_and_quarantined(home: Path) -> None:
    make_run(home / "spool", "elsewhere", table="/somewhere/else", segments=[make_steps("x", 1)])
    make_run(home / "spool", "broken", table=None, segments=["{nope\n"])
    result = pipetrace("ingest", home=home)
    assert result.returncode == 0, result.stderr
    assert f"committed 4 steps (1 segments, 1 runs) to {home / 'pipeline_steps'}" in result.stdout
    assert "skipped run elsewhere: meant for table /somewhere/else" in result.stderr
    assert re.search(r"quarantined .*broken/quarantine/seg-000001.jsonl", result.stderr)
    assert "committed 0 steps" in pipetrace("ingest", home=home).stdout


def test_ingest_into_an_unwritable_location_fails_with_advice(home: Path) -> None:
    (home / "a_file").write_text("")
    result = pipetrace("ingest", "--table", str(home / "a_file" / "steps"), home=home)
    assert result.returncode == 1
    assert "choose a writable location with --table or PIPETRACE_TABLE" in result.stderr


QUERY = ("SELECT seq, action, output, tags, captured_at FROM pipeline_steps "
         "WHERE run_id = 'r1' ORDER BY seq")


def test_sql_json(ingested: Path) -> None:
    result = pipetrace("sql", "--format", "json", QUERY, home=ingested)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["action"] for r in rows] == ["count", "collect", "show", "write"]
    assert rows[0] == {"seq": 1, "action": "count", "output": None,
                       "tags": {"team": "growth", "agent": "claude"},
                       "captured_at": "2026-11-25T03:35:11.123456Z"}
    assert rows[3]["output"] == {"kind": "path", "name": "/data/out/orders_by_region",
                                 "format": "parquet", "mode": "Overwrite",
                                 # Delta's version/operation/metrics: null for a parquet write
                                 "version": None, "operation": None, "metrics": None,
                                 "path": None}


def test_sql_csv(ingested: Path) -> None:
    result = pipetrace("sql", "--format", "csv", QUERY, home=ingested)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0]["output"] == "" and json.loads(rows[3]["output"])["mode"] == "Overwrite"
    assert json.loads(rows[0]["tags"]) == {"team": "growth", "agent": "claude"}


def test_sql_table(ingested: Path) -> None:
    result = pipetrace("sql", "SELECT seq, action, status FROM pipeline_steps ORDER BY seq",
                       home=ingested)
    assert result.returncode == 0, result.stderr
    assert re.search(r"│ 3\s+│ show\s+│ FAILED\s+│", result.stdout)
    assert "4 rows" in result.stderr


def test_steps_shows_the_latest_run(ingested: Path) -> None:
    result = pipetrace("steps", home=ingested)
    assert result.returncode == 0, result.stderr
    header, *table = result.stdout.splitlines()
    assert header == f"run r1: 4 steps, 1 failed · {ingested / 'pipeline_steps'}"
    text = "\n".join(table)
    assert re.search(r"│ 1\s+│ count\s+│ SUCCEEDED\s+│ 41,873\s+│ 221 ms\s+│ orders.parquet\s+│", text)
    assert "orders.parquet, crm.customers" in text
    assert re.search(r"│ 3\s+│ show\s+│ FAILED\s+│", text)
    assert "AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION]" in text  # its error line
    assert re.search(r"│ 4\s+│ write .*│ 2.6 s\s+│ orders.parquet → orders_by_region", text)
    assert pipetrace("steps", "r1", home=ingested).stdout == result.stdout


def test_steps_of_an_unknown_run(ingested: Path) -> None:
    result = pipetrace("steps", "nope", home=ingested)
    assert result.returncode == 1 and "no steps for run 'nope'" in result.stderr


@pytest.mark.parametrize("command", [["steps"], ["sql", "SELECT 1"]])
def test_missing_table(tmp_path: Path, command: list[str]) -> None:
    result = pipetrace(*command, home=tmp_path)
    assert result.returncode == 1
    assert (f"no pipeline_steps table at {tmp_path / 'pipeline_steps'}: run `pipetrace run "
            "script.py` or attach(spark) first") in result.stderr


def test_bad_sql(ingested: Path) -> None:
    result = pipetrace("sql", "SELECT nope FROM pipeline_steps", home=ingested)
    assert result.returncode == 1
    assert "query failed" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["bogus"], ["sql", "--format", "xml", "SELECT 1"],
                                  ["steps", "--table", " "]])
def test_usage_and_config_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = pipetrace(*args, home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


# --- pipetrace run (without a JVM: a stand-in script spools the steps) ---------------------


def test_new_run_id_format() -> None:
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", runner.new_run_id())


@pytest.mark.parametrize(
    ("existing", "expected_head"),
    [
        (None, ["--driver-class-path", "/p.jar"]),
        ("pyspark-shell", ["--driver-class-path", "/p.jar"]),
        ("--driver-memory 2g pyspark-shell", ["--driver-memory", "2g", "--driver-class-path"]),
        ("--driver-class-path /mine.jar --conf spark.sql.queryExecutionListeners=my.L pyspark-shell",
         ["--driver-class-path", "/mine.jar:/p.jar",
          "--conf", f"spark.sql.queryExecutionListeners=my.L,{LISTENER_CLASS}"]),
    ],
)
def test_submit_args_keep_the_users_own(existing: str | None, expected_head: list[str]) -> None:
    tokens = shlex.split(runner.submit_args(existing, jar=Path("/p.jar"), run_id="r 1",
                                            spool=Path("/sp"), table="/t"))
    assert tokens[: len(expected_head)] == expected_head
    assert tokens.count("pyspark-shell") == 1 and tokens[-1] == "pyspark-shell"
    assert f"spark.sql.queryExecutionListeners={LISTENER_CLASS}" in " ".join(tokens) or \
        "my.L," in " ".join(tokens)
    assert tokens[-7:-1] == ["--conf", "spark.pipetrace.run_id=r 1", "--conf",
                             "spark.pipetrace.spool=/sp", "--conf", "spark.pipetrace.table=/t"]


def test_run_script_without_the_jar_says_reinstall(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(runner, "jar_path", lambda: tmp_path / "missing.jar")
    with pytest.raises(JarNotFoundError, match=r"reinstall with pip install \."):
        runner.run_script(tmp_path / "script.py", [])


@pytest.mark.parametrize("exit_code", [0, 3])
def test_run_script_commits_the_runs_steps_whatever_the_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, exit_code: int
) -> None:
    fake_jar = tmp_path / "pipetrace-shim.jar"
    fake_jar.write_bytes(b"")
    monkeypatch.setattr(runner, "jar_path", lambda: fake_jar)
    monkeypatch.setenv("PIPETRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PIPETRACE_SPOOL", raising=False)
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--driver-memory 1g pyspark-shell")
    script = tmp_path / "job.py"
    script.write_text(FAKE_SPARK_SCRIPT)
    (tmp_path / "steps.jsonl").write_text(lines(make_steps("run-x", 4)))
    table = str(tmp_path / "t")
    result = runner.run_script(script, [str(tmp_path / "steps.jsonl"), str(exit_code),
                                        str(tmp_path / "args.txt")], table=table, run_id="run-x")
    assert (result.exit_code, result.run_id, result.steps, result.failed_steps, result.table) == (
        exit_code, "run-x", 4, 1, table)
    submitted = (tmp_path / "args.txt").read_text()
    assert submitted.startswith("--driver-memory 1g --driver-class-path")
    assert not (tmp_path / "home" / "spool" / "run-x").exists()
    assert ingest(table=table).steps == 0


def test_cli_run_prints_a_summary_and_exits_with_the_scripts_code(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(FAKE_SPARK_SCRIPT)
    (tmp_path / "steps.jsonl").write_text(lines(make_steps("run-y", 4)))
    result = pipetrace("run", "--run-id", "run-y", str(script), str(tmp_path / "steps.jsonl"),
                       "5", str(tmp_path / "args.txt"), home=tmp_path)
    assert result.returncode == 5
    assert "hello from the script" in result.stdout
    assert (f"run run-y: 4 steps captured into {tmp_path / 'pipeline_steps'}"
            in result.stderr)
    assert "1 action failed (seq 3): pipetrace steps run-y shows the error" in result.stderr
