"""Never lose a step, never touch the user's data (issue 9): detach and script exit with actions
in flight, a restarted Spark in one process, reused run ids, concurrent actions on one session,
refused table locations and a second attach() with other settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

import pipetrace
from pipetrace.errors import ConfigError
from pipetrace.verify import verify
from tests.test_faults import env_for, table_rows

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipetrace", *args], env=env_for(home),
                          capture_output=True, text=True, timeout=300, cwd=home)


def steps_by_run(table: Path) -> dict[str, list[int]]:
    runs: dict[str, list[int]] = {}
    for row in table_rows(table):
        runs.setdefault(row["run_id"], []).append(row["seq"])
    return {run: sorted(seqs) for run, seqs in runs.items()}


# --- detach -------------------------------------------------------------------------------

def test_detach_right_after_a_write_keeps_its_step(spark: Any, tmp_path: Path) -> None:
    """attach, one write, detach, again and again: every write is a step (it was lost about one
    time in fifteen when detach took the listener off before the queue was delivered)."""
    table = tmp_path / "t"
    for i in range(20):
        with pipetrace.attach(spark, table=str(table), spool=str(tmp_path / "s"),
                              run_id=f"churn-{i}"):
            spark.range(5).write.parquet(str(tmp_path / f"out{i}"))
    assert steps_by_run(table) == {f"churn-{i}": [1] for i in range(20)}


def test_detach_waits_for_an_action_still_running(spark: Any, tmp_path: Path) -> None:
    def slow(batches: Any) -> Any:  # defined here so that Spark's Python workers get it by value
        import time
        for batch in batches:
            time.sleep(1.0)  # the action's own work: keeps it running while detach() is called
            yield batch

    handle = pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s"))
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(len(
        spark.range(0, 4, 1, 2).mapInPandas(slow, "id long").collect())))
    worker.start()
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 60
    while not tracker.getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for Spark to start the job, not for the listener
    assert tracker.getActiveJobsIds(), "the action never started"
    flushed = handle.detach()
    worker.join()
    assert result == [4]
    steps = pipetrace.steps(handle.run_id, table=str(tmp_path / "t"))
    assert steps[["action", "rows_out"]].to_dict("records") == [{"action": "collect", "rows_out": 4}]
    assert flushed.dropped == 0


SCRIPT_WITHOUT_STOP = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
out = sys.argv[1]
for i in range(3):
    spark.range(100 * (i + 1)).write.option("compression", "snappy").mode("overwrite") \\
        .parquet(f"{out}/p{i}")
print(spark.read.parquet(f"{out}/p2").count())
"""


@pytest.mark.parametrize("attempt", [pytest.param(i, marks=pytest.mark.slow) if i else i
                                     for i in range(4)])
def test_a_script_that_exits_without_stop_keeps_its_last_step(tmp_path: Path,
                                                              attempt: int) -> None:
    (tmp_path / "job.py").write_text(SCRIPT_WITHOUT_STOP)
    proc = run_cli("run", "--table", str(tmp_path / "t"), str(tmp_path / "job.py"),
                   str(tmp_path / "out"), home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = sorted(table_rows(tmp_path / "t"), key=lambda r: r["seq"])
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert "4 steps captured" in proc.stderr
    assert not list((tmp_path / "spool").rglob("seg-*"))   # nothing left behind


# --- a new SparkSession in the same process; a reused run id ---------------------------------

RESTART = """
import json, sys
from pyspark.sql import SparkSession
import pipetrace

def session():
    return (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
            .getOrCreate())

table, spool = sys.argv[1], sys.argv[2]
spark = session()
with pipetrace.attach(spark, table=table, spool=spool, run_id="restarted") as t:
    spark.range(5).count()
spark.stop()
spark = session()
with pipetrace.attach(spark, table=table, spool=spool, run_id="restarted") as t:
    spark.range(7).count()
    spark.range(9).collect()
print(json.dumps(t.steps()[["seq", "rows_out"]].to_dict("records")))
"""


def test_a_new_session_in_the_same_process_continues_the_run(tmp_path: Path) -> None:
    (tmp_path / "restart.py").write_text(RESTART)
    proc = subprocess.run([sys.executable, str(tmp_path / "restart.py"), str(tmp_path / "t"),
                           str(tmp_path / "s")], env=env_for(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [
        {"seq": 1, "rows_out": 5}, {"seq": 2, "rows_out": 7}, {"seq": 3, "rows_out": 9}]
    assert verify(table=str(tmp_path / "t")).ok


RESTART_IN_SCRIPT = """
from pyspark.sql import SparkSession
def session():
    return SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
spark = session()
spark.range(3).count()
spark.range(4).collect()
spark.stop()
spark = session()
spark.range(5).count()
spark.stop()
"""


def test_a_reused_run_id_and_a_restarting_script_keep_seq_unique(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(RESTART_IN_SCRIPT)
    table = tmp_path / "t"
    for _ in range(2):
        proc = run_cli("run", "--table", str(table), "--run-id", "nightly", str(tmp_path / "job.py"),
                       home=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert steps_by_run(table) == {"nightly": [1, 2, 3, 4, 5, 6]}
    assert verify(table=str(table)).ok


# --- concurrency ----------------------------------------------------------------------------

def test_concurrent_actions_each_get_their_own_facts(spark: Any, tmp_path: Path) -> None:
    """8 threads, each alternating take and collect on its own DataFrame, plus 4 threads
    collecting one shared DataFrame at once: each step's action, rows and call site are those
    of its own action."""
    shared = spark.range(0, 200, 1, 4).filter("id % 2 = 0")   # 100 rows
    lines: dict[str, int] = {}

    def worker(n: int) -> None:
        df = spark.range(100 + n)
        for _ in range(10):
            df.take(3); lines.setdefault("take", sys._getframe().f_lineno)  # noqa: E702
            df.collect(); lines.setdefault("collect", sys._getframe().f_lineno)  # noqa: E702

    def shared_worker() -> None:
        for _ in range(5):
            assert len(shared.collect()) == 100; lines.setdefault("shared", sys._getframe().f_lineno)  # noqa: E702

    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s")) as trace:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        threads += [threading.Thread(target=shared_worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        trace.flush()
        steps = trace.steps()
    assert len(steps) == 8 * 20 + 4 * 5
    assert sorted(steps["seq"]) == list(range(1, len(steps) + 1))
    wrong = []
    for _, step in steps.iterrows():
        name = step["inputs"][0]["name"]
        size = int(re.search(r"range\(0, (\d+)", name).group(1))
        if size == 200:
            expected, line = ("collect", 100), lines["shared"]
        elif step["rows_out"] == 3:
            expected, line = ("take", 3), lines["take"]
        else:
            expected, line = ("collect", size), lines["collect"]
        got = (step["action"], step["rows_out"])
        # PySpark may record no call site for an action of a thread while another thread is
        # inside one, or the thread's previous one: null or this thread's own line, never a
        # line of another thread's code.
        site = step["call_site"] if isinstance(step["call_site"], str) else None
        own = {lines["shared"]} if line == lines.get("shared") else {lines["take"],
                                                                    lines["collect"]}
        if got != expected or (site is not None and site not in {f"{__file__}:{n}" for n in own}):
            wrong.append((got, expected, site, line))
    from collections import Counter
    assert wrong == [], Counter(map(str, wrong)).most_common(8)


# --- refused locations, a second attach ------------------------------------------------------

def test_a_folder_of_user_data_is_never_turned_into_the_table(spark: Any, tmp_path: Path) -> None:
    data = tmp_path / "customers"
    spark.range(10).write.parquet(str(data))
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(ConfigError, match=r"already holds other data .*part-"):
        pipetrace.attach(spark, table=str(data), spool=str(tmp_path / "s"))
    assert sorted(p.name for p in data.iterdir()) == before   # no _delta_log, nothing written
    assert spark.read.parquet(str(data)).count() == 10


def test_a_delta_table_of_other_data_is_refused(spark: Any, tmp_path: Path) -> None:
    other = tmp_path / "scores"
    write_deltalake(str(other), pd.DataFrame({"customer": [1, 2], "score": [0.5, 0.7]}))
    with pytest.raises(ConfigError, match=r"Delta table of other data .*customer"):
        pipetrace.attach(spark, table=str(other), spool=str(tmp_path / "s"))
    assert len(DeltaTable(str(other)).to_pandas()) == 2 and DeltaTable(str(other)).version() == 0


def test_a_table_location_that_is_a_file_is_refused_up_front(tmp_path: Path) -> None:
    (tmp_path / "steps.txt").write_text("not a table")
    (tmp_path / "job.py").write_text("print('never run')\n")
    proc = subprocess.run([sys.executable, "-m", "pipetrace", "run", str(tmp_path / "job.py")],
                          env={**env_for(tmp_path), "PIPETRACE_TABLE": str(tmp_path / "steps.txt")},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "is a file, not a directory" in proc.stderr and "never run" not in proc.stdout


def test_a_second_attach_with_other_settings_is_refused(spark: Any, tmp_path: Path) -> None:
    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s")) as first:
        for other in ({"mask_literals": True}, {"table": str(tmp_path / "other")},
                      {"run_id": "another-run"}, {"tags": {"team": "risk"}}):
            with pytest.raises(ConfigError, match=r"already captured by run .*detach"):
                pipetrace.attach(spark, **other)
        assert pipetrace.attach(spark, table=str(tmp_path / "t")) is first
        assert pipetrace.attach(spark) is first


# --- drops are reported ------------------------------------------------------------------------

def _break_spool(run_dir: Path) -> None:
    """The run's spool directory becomes a file: the next segment cannot be created (root
    ignores permissions, so chmod would not stop the writer)."""
    import shutil
    shutil.rmtree(run_dir)
    run_dir.write_text("")


def test_a_spool_that_stops_taking_writes_is_reported_by_flush(spark: Any,
                                                               tmp_path: Path) -> None:
    handle = pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s"))
    spark.range(3).count()
    assert handle.flush().error is None
    run_dir = Path(handle.status()["spool_dir"])
    _break_spool(run_dir)
    spark.range(4).count()
    flushed = handle.flush()
    assert flushed.dropped == 1
    assert flushed.error is not None and "1 step(s)" in flushed.error and "dropped" in flushed.error
    assert handle.status()["dropped"] == 1
    run_dir.unlink()
    handle.detach()


BREAKS_ITS_SPOOL = """
import os, shutil
from pathlib import Path
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
spark.sparkContext.setLogLevel("OFF")   # an agent that silenced Spark's logs
spark.range(3).count()
run_dir = Path(os.environ["PIPETRACE_HOME"], "spool", spark.conf.get("spark.pipetrace.run_id"))
spark._jvm.io.pipetrace.Bridge().flush(spark._jsparkSession, spark.conf.get("spark.pipetrace.run_id"), 30000)
shutil.rmtree(run_dir)
run_dir.write_text("")
spark.range(4).count()
spark.stop()
"""


def test_pipetrace_run_exits_3_when_steps_were_dropped(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(BREAKS_ITS_SPOOL)
    proc = run_cli("run", "--table", str(tmp_path / "t"), str(tmp_path / "job.py"), home=tmp_path)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert re.search(r"error: run \S+: (1 step\(s\) dropped|capture unconfirmed)", proc.stderr)


# --- streaming -------------------------------------------------------------------------------

def test_actions_inside_foreach_batch_are_steps_labelled_with_their_batch(
        spark: Any, tmp_path: Path) -> None:
    """Each action the agent runs inside foreachBatch is a step (they ran nested in the
    micro-batch, which reports no action of its own, and were all skipped)."""
    for i in range(3):
        spark.range(i * 10, i * 10 + 10).write.mode("append").parquet(str(tmp_path / "in"))
    counts: list[int] = []

    def each(df: Any, batch_id: int) -> None:
        df.write.mode("append").parquet(str(tmp_path / "out"))
        counts.append(df.count())

    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s")) as trace:
        query = (spark.readStream.schema("id long").option("maxFilesPerTrigger", 1)
                 .parquet(str(tmp_path / "in")).writeStream.foreachBatch(each)
                 .option("checkpointLocation", str(tmp_path / "cp")).trigger(availableNow=True)
                 .start())
        query.awaitTermination()
        trace.flush()
        steps = trace.steps()
    assert len(counts) >= 3 and sum(counts) == 30
    assert steps["action"].tolist() == ["write", "count"] * len(counts)
    assert steps["rows_out"].tolist() == [n for n in counts for _ in range(2)]
    batches = [dict(c)["stream_batch"] for c in steps["context"]]
    assert all(b.startswith(f"query {query.id} batch ") for b in batches)
    assert len(set(batches)) == len(counts)
    assert spark.read.parquet(str(tmp_path / "out")).count() == 30


def test_each_micro_batch_is_a_write_step_naming_its_sink_and_rows(
        spark: Any, tmp_path: Path) -> None:
    """A streaming query's micro-batches are `stream_write` steps, one per batch, with the sink
    they wrote and the rows they handed it: a V2 sink (memory, whose batches Spark runs as a
    collect) and a V1 sink (files, whose batches no QueryExecutionListener sees)."""
    for i in range(3):
        spark.range(i * 10, i * 10 + 10 + i).write.mode("append").parquet(str(tmp_path / "in"))
    with pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s")) as trace:
        src = (spark.readStream.schema("id long").option("maxFilesPerTrigger", 1)
               .parquet(str(tmp_path / "in")).filter("id % 3 != 0"))
        memory = (src.writeStream.format("memory").queryName("evens_mem")
                  .option("checkpointLocation", str(tmp_path / "cp1"))
                  .trigger(availableNow=True).start())
        memory.awaitTermination()
        files = (src.writeStream.format("parquet").option("path", str(tmp_path / "out"))
                 .option("checkpointLocation", str(tmp_path / "cp2"))
                 .trigger(availableNow=True).start())
        files.awaitTermination()
        trace.flush()
        steps = trace.steps()
    writes = steps[steps["action"] == "stream_write"]
    by_query = {q: writes[[dict(c)["stream_batch"].startswith(f"query {q} ")
                           for c in writes["context"]]] for q in (memory.id, files.id)}

    # Memory sink: one step per batch; rows = what the sink itself says it received.
    mem = by_query[memory.id]
    progress = {p["batchId"]: p for p in memory.recentProgress}
    assert len(mem) == len(progress) >= 3
    assert [dict(c)["stream_batch"] for c in mem["context"]] == [
        f"query {memory.id} batch {b}" for b in sorted(progress)]
    assert mem["rows_out"].tolist() == [progress[b]["sink"]["numOutputRows"]
                                        for b in sorted(progress)]
    assert int(mem["rows_out"].sum()) == spark.table("evens_mem").count()
    assert {dict(c).get("stream_query") for c in mem["context"]} == {"evens_mem"}
    assert {(o["kind"], o["name"], o["format"], o["mode"]) for o in mem["output"]} == {
        ("table", "evens_mem", "memory", "Append")}

    # File sink: Spark reports no rows for it (numOutputRows -1); the step counts them.
    out = by_query[files.id]
    fprogress = {p["batchId"]: p for p in files.recentProgress}
    assert len(out) == len(fprogress) >= 3
    assert {p["sink"]["numOutputRows"] for p in fprogress.values()} == {-1}
    assert out["spark_func"].tolist() == ["addBatch"] * len(out)
    assert set(out["status"]) == {"SUCCEEDED"}
    written = spark.read.parquet(str(tmp_path / "out"))
    assert int(out["rows_out"].sum()) == written.count()
    # per batch: the rows the batch read, less the filtered ones, counted from its input files
    per_batch = [spark.read.parquet(*[f.replace("file://", "") for f in
                                      _batch_files(tmp_path / "cp2", b)])
                 .filter("id % 3 != 0").count() for b in sorted(fprogress)]
    assert out["rows_out"].tolist() == per_batch
    assert {(o["kind"], o["format"], o["mode"]) for o in out["output"]} == {
        ("path", "parquet", "Append")}
    assert {o["name"] for o in out["output"]} == {f"file:{tmp_path / 'out'}"}
    # Column lineage is not followed into micro-batches yet: null, and this warning says so.
    assert not any(w for ws in writes["capture_warnings"] for w in ws
                   if w != "column_lineage: not recorded for a streaming micro-batch")
    assert all(cl is None for cl in writes["column_lineage"])


STREAM_JOB = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[2]").config("spark.sql.shuffle.partitions", 2).getOrCreate()
base = sys.argv[1]
spark.range(0, 10).write.mode("append").parquet(base + "/in")
spark.range(10, 25).write.mode("append").parquet(base + "/in")
src = spark.readStream.schema("id long").option("maxFilesPerTrigger", 1).parquet(base + "/in")
q = (src.writeStream.format("parquet").option("path", base + "/out")
     .option("checkpointLocation", base + "/cp").trigger(availableNow=True).start())
q.awaitTermination()
print("BATCHES", len(q.recentProgress), "ROWS", spark.read.parquet(base + "/out").count())
"""


def test_pipetrace_run_records_a_file_sinks_batches(tmp_path: Path) -> None:
    """Under `pipetrace run` (listeners from the conf, as on a cluster) a file sink's batches,
    which no QueryExecutionListener sees, are steps with their path and rows too."""
    (tmp_path / "job.py").write_text(STREAM_JOB)
    proc = run_cli("run", "--table", str(tmp_path / "t"), str(tmp_path / "job.py"),
                   str(tmp_path), home=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    batches, rows = map(int, re.search(r"BATCHES (\d+) ROWS (\d+)", proc.stdout).groups())
    steps = DeltaTable(str(tmp_path / "t")).to_pandas().sort_values("seq")
    writes = steps[steps["action"] == "stream_write"]
    assert len(writes) == batches >= 2
    assert int(writes["rows_out"].sum()) == rows == 25
    assert {o["name"] for o in writes["output"]} == {f"file:{tmp_path / 'out'}"}


def _batch_files(checkpoint: Path, batch: int) -> list[str]:
    """The input files a file-source batch read, from the query's own checkpoint."""
    import json
    lines = (checkpoint / "sources" / "0" / str(batch)).read_text().splitlines()
    return [json.loads(line)["path"] for line in lines[1:]]
