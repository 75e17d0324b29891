"""Faults injected into real processes: kill -9 of `pipetrace run` at several points, concurrent
committers, and interpreter exit / spark.stop() without a flush. Each test states what would
break without the protection.

Commit-side faults are injected from the test side only: a wrapper runs the real CLI after
patching ``pipetrace.ingest.write_deltalake`` to SIGKILL the whole process group (pipetrace run,
the script and its driver JVM) just before or just after the real Delta commit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

import pipetrace
from pipetrace import spool as sp
from pipetrace.errors import ConfigError
from pipetrace.ingest import ensure_table
from tests.spool_helpers import lines, make_steps, write_manifest

PYTHON_DIR = str(Path(__file__).resolve().parents[1] / "python")

# Runs the real `pipetrace` CLI with write_deltalake patched to kill everything around it.
KILLER = """
import os, signal, sys
import pipetrace.ingest
ingest = sys.modules["pipetrace.ingest"]  # the package exports a function of the same name
real = ingest.write_deltalake
mode = sys.argv[1]
def write_deltalake(*args, **kwargs):
    if mode == "before-commit":
        os.killpg(0, signal.SIGKILL)
    out = real(*args, **kwargs)
    if mode == "after-commit":
        os.killpg(0, signal.SIGKILL)
    return out
ingest.write_deltalake = write_deltalake
from pipetrace.cli import main
sys.exit(main(sys.argv[2:]))
"""

JOB = """
import sys
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false").getOrCreate())
df = spark.range(50)
for i in range(int(sys.argv[1])):
    df.filter(f"id >= {i}").count()
    print(f"done {i + 1}", flush=True)
"""


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIPETRACE_", "PYSPARK_SUBMIT_ARGS"))}
    env.update(PIPETRACE_HOME=str(home), COLUMNS="200",
               PYTHONPATH=os.pathsep.join(filter(None, [PYTHON_DIR, env.get("PYTHONPATH")])))
    return env


def table_rows(table: Path) -> list[dict[str, Any]]:
    if not (table / "_delta_log").is_dir():
        return []
    data = DeltaTable(str(table)).to_pyarrow_table(columns=["run_id", "seq", "event_id"])
    return data.to_pylist()


def spooled_event_ids(spool: Path) -> set[str]:
    """Event ids of every complete line in the spool (sealed and .open), before recovery."""
    found: set[str] = set()
    for run_dir in sp.list_runs(spool):
        for seg in [*sp.sealed_segments(run_dir), *sp.open_segments(run_dir)]:
            data = seg.path.read_bytes()
            for line in data[: data.rfind(b"\n") + 1].splitlines():
                if line.strip():
                    found.add(json.loads(line)["event_id"])
    return found


def wait_writer_gone(spool: Path, run_id: str, timeout: float = 60) -> None:
    """The driver JVM died with its group; wait until the OS has released its lock."""
    deadline = time.monotonic() + timeout
    while sp.writer_state(spool / run_id) == "alive":
        assert time.monotonic() < deadline, "the killed driver JVM still holds writer.lock"
        time.sleep(0.05)


def start_killed_run(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path, Path]:
    home = tmp_path / mode
    home.mkdir()
    (home / "job.py").write_text(JOB)
    (home / "killer.py").write_text(KILLER)
    table = home / "steps"
    actions = "200" if mode == "mid-capture" else "6"
    proc = subprocess.Popen(
        [sys.executable, str(home / "killer.py"), mode, "run", "--table", str(table),
         "--run-id", f"kill-{mode}", str(home / "job.py"), actions],
        env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True)  # its own process group: what we kill is exactly the run
    return proc, home, table


def test_kill_9_at_any_point_loses_and_duplicates_nothing(tmp_path: Path, spark: Any) -> None:
    """Without the txn-id check, `after-commit` duplicates; without open-segment recovery,
    `mid-capture` loses the steps of the last segment."""
    runs = {mode: start_killed_run(tmp_path, mode)
            for mode in ("mid-capture", "before-commit", "after-commit")}
    for mode, (proc, _home, _table) in runs.items():
        assert proc.stdout is not None
        if mode == "mid-capture":
            for line in proc.stdout:  # kill while the script is running actions
                if line.strip() == "done 8":
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
        proc.wait(timeout=300)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, f"{mode}: the fault was not injected"

    report = {}
    for mode, (_proc, home, table) in runs.items():
        spool = home / "spool"
        wait_writer_gone(spool, f"kill-{mode}")
        expected = {r["event_id"] for r in table_rows(table)} | spooled_event_ids(spool)
        assert expected, f"{mode}: no step reached the spool before the kill"
        if mode == "after-commit":
            # The next attach() of the same table takes over the dead run.
            started = time.monotonic()
            with pipetrace.attach(spark, table=str(table), spool=str(spool),
                                  run_id=f"next-{mode}") as trace:
                trace.flush()
            took = time.monotonic() - started
            result = None
        else:
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "pipetrace", "recover", "--spool", str(spool),
                 "--table", str(table)], env=env_for(home), capture_output=True, text=True,
                timeout=120)
            took = time.monotonic() - started
            assert result.returncode == 0, result.stderr
        rows = [r for r in table_rows(table) if r["run_id"] == f"kill-{mode}"]
        ids = [r["event_id"] for r in rows]
        assert len(ids) == len(set(ids)), f"{mode}: duplicated steps"
        assert set(ids) == expected, f"{mode}: lost {len(expected - set(ids))} steps"
        assert sorted(r["seq"] for r in rows) == list(range(1, len(rows) + 1)), mode
        assert not (spool / f"kill-{mode}").exists(), f"{mode}: run left in the spool"
        report[mode] = (len(expected), len(ids), round(took, 2))
    print("kill -9 (expected, found, seconds to recover):", report)


def test_four_processes_append_to_one_table_without_losing_a_row(tmp_path: Path) -> None:
    """Concurrent blind appends conflict on the Delta log version; delta-rs must retry them
    (CommitProperties max_commit_retries) and the table creation race must be tolerated."""
    table, spool, go = tmp_path / "steps", tmp_path / "spool", tmp_path / "go"
    code = """
import sys, time
from pathlib import Path
from pipetrace.ingest import ingest
spool, table, run_id, go = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
for number in range(1, 16):
    seg = spool / run_id / f"seg-{number:06d}.jsonl"
    seg.write_text(Path(sys.argv[5]).read_text().split("\\n=\\n")[number - 1])
    ingest(spool=spool, table=table, run_ids=[run_id])
"""
    procs = []
    for p in range(4):
        run_id = f"writer-{p}"
        write_manifest(spool / run_id, run_id, str(table))  # no writer.lock: the run stays
        steps = make_steps(run_id, 30)
        chunks = tmp_path / f"{run_id}.txt"
        chunks.write_text("\n=\n".join(lines(steps[i:i + 2]) for i in range(0, 30, 2)))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", code, str(spool), str(table), run_id, str(go), str(chunks)],
            env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    go.touch()
    outcomes = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], [err for _, err in outcomes]
    rows = table_rows(table)
    assert len(rows) == 120 and len({r["event_id"] for r in rows}) == 120
    for p in range(4):
        assert sorted(r["seq"] for r in rows if r["run_id"] == f"writer-{p}") == list(range(1, 31))
    # Each of the 60 commits is its own Delta version: the appends really did race.
    assert DeltaTable(str(table)).version() >= 60


EXIT_JOB = """
import sys
import pipetrace
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.pipetrace.tabel", "/typo")             # unknown setting: warned
         .config("spark.pipetrace.segment_max_steps", "lots")  # malformed: warned, default
         .getOrCreate())
# No background commit during the run: only the exit path can deliver the steps.
pipetrace.attach(spark, table=sys.argv[1], run_id=sys.argv[2], commit_interval=3600)
df = spark.range(30)
df.count(); df.collect(); df.filter("id > 3").count()
if sys.argv[3] == "stop":
    spark.stop()
print("bye", flush=True)
"""


def test_interpreter_exit_and_spark_stop_commit_every_step(tmp_path: Path) -> None:
    """No flush(), no detach(): the atexit hook (bounded) and the JVM's application-end
    sealing must deliver all three steps, with or without spark.stop() first."""
    (tmp_path / "job.py").write_text(EXIT_JOB)
    table = tmp_path / "steps"
    ensure_table(str(table))
    procs = {how: subprocess.Popen(
        [sys.executable, str(tmp_path / "job.py"), str(table), f"exit-{how}", how],
        env=env_for(tmp_path / how), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for how in ("exit", "stop")}
    for proc in procs.values():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "bye" in out, err[-3000:]
        assert "unknown setting spark.pipetrace.tabel" in err
        assert "Did you mean spark.pipetrace.table?" in err
        assert "spark.pipetrace.spool, spark.pipetrace.run_id" in err  # the known names
        assert "ignoring spark.pipetrace.segment_max_steps=lots" in err
        assert err.count("unknown setting spark.pipetrace.tabel") == 1
    rows = table_rows(table)
    for how in procs:
        assert sorted(r["seq"] for r in rows if r["run_id"] == f"exit-{how}") == [1, 2, 3], how
        assert not (tmp_path / how / "spool" / f"exit-{how}").exists()


@pytest.mark.parametrize("name", ["", "   ", "bad\x00name", "two\nlines"])
def test_invalid_table_names_fail_before_anything_is_attached(
    spark: Any, tmp_path: Path, name: str
) -> None:
    with pytest.raises(ConfigError, match="table location"):
        pipetrace.attach(spark, table=name, spool=str(tmp_path / "spool"))
    assert not (tmp_path / "spool").exists()
