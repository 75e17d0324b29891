"""What data a step read (inputs' files, bytes, modified_max, fingerprint) and one name and path
per table (issue 12, items 4 and 6), against the truth the test reads from the file system.

The truth: the data files under the input's directory (os.walk + os.stat), skipping what Spark
skips (names starting with "_" or ".", except partition directories like "_p=1"; empty files),
restricted to the partitions a filter keeps; its fingerprint computed here from the recipe the
column comment states. Capture itself must run no Spark job and list no directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import pipetrace
from pipetrace.audit import query_text
from pipetrace.spark import Handle
from pipetrace.verify import verify
from tests.conftest import flushed_steps

MASK = "*********(redacted)"
SECRET = "seeded-19-static-conf-secret"  # a sensitive setting's value (pyproject spark_options)

File = tuple[str, int, int]  # (file: URI, size, mtime in epoch ms)


def _hidden(name: str) -> bool:
    return (name.startswith("_") and "=" not in name) or name.startswith(".")


def data_files(root: str | Path, keep: Callable[[str], bool] = lambda rel: True) -> list[File]:
    """The files Spark reads under ``root``; ``keep`` gets each directory relative to root."""
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        if not keep(os.path.relpath(folder, root)):
            continue
        for name in names:
            full = os.path.join(folder, name)
            stat = os.stat(full)
            if not _hidden(name) and stat.st_size > 0:
                out.append((f"file:{full}", stat.st_size, stat.st_mtime_ns // 1_000_000))
    return out


def identity(files: list[File], redact: Callable[[str], str] = lambda p: p) -> dict[str, Any]:
    """files, bytes, modified_max and fingerprint as the schema's comment defines them."""
    lines = sorted((redact(path), size, mtime) for path, size, mtime in files)
    text = "".join(f"{path}\t{size}\t{mtime}\n" for path, size, mtime in lines)
    newest = max((mtime for _, _, mtime in files), default=None)
    return {"files": len(files), "bytes": sum(size for _, size, _ in files),
            "modified_max": None if newest is None
            else datetime.fromtimestamp(newest / 1000, tz=timezone.utc),
            "fingerprint": hashlib.sha256(text.encode()).hexdigest()}


def recorded(step: Any, index: int = 0) -> dict[str, Any]:
    """The identity fields of the step's ``index``-th input, as plain Python values."""
    source = dict(step["inputs"][index])
    out = {k: source[k] for k in ("files", "bytes", "fingerprint")}
    out["files"] = None if out["files"] is None else int(out["files"])
    out["bytes"] = None if out["bytes"] is None else int(out["bytes"])
    stamp = source["modified_max"]
    out["modified_max"] = None if stamp is None else stamp.to_pydatetime() \
        if hasattr(stamp, "to_pydatetime") else stamp
    return out


def real(path: Path) -> str:
    return os.path.realpath(path)


def write_csv(spark: Any, path: str, rows: int = 40, files: int = 4) -> None:
    spark.range(rows).repartition(files).write.csv(path)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json", "orc"])
def test_a_path_read_records_the_files_on_disk(spark: Any, trace: Handle, tmp_path: Path,
                                                fmt: str) -> None:
    path = real(tmp_path) + "/data"
    spark.range(40).repartition(4).write.format(fmt).save(path)
    assert spark.read.format(fmt).load(path).count() == 40
    step = flushed_steps(trace).iloc[-1]
    truth = data_files(path)
    assert len(truth) == 4
    assert recorded(step) == identity(truth)
    assert step["inputs"][0]["path"] == step["inputs"][0]["name"] == f"file:{path}"
    assert list(step["capture_warnings"]) == []


def test_changing_the_files_changes_the_identity(spark: Any, trace: Handle,
                                                 tmp_path: Path) -> None:
    path = real(tmp_path) + "/data"
    write_csv(spark, path)
    first = sorted(f for f in os.listdir(path) if f.startswith("part-"))[0]
    seen = []

    def read() -> None:
        spark.read.csv(path).count()
        step = flushed_steps(trace).iloc[-1]
        assert recorded(step) == identity(data_files(path))
        seen.append(recorded(step))

    read()
    os.remove(os.path.join(path, f".{first}.crc"))  # Hadoop's checksum of the old content
    with open(os.path.join(path, first), "a") as f:  # rewrite: one more row
        f.write("999\n")
    read()
    shutil.copy(os.path.join(path, first), os.path.join(path, "part-extra.csv"))  # a new file
    read()
    stat = os.stat(os.path.join(path, first))  # same size, new modification time only
    os.utime(os.path.join(path, first), ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    read()
    read()  # nothing changed since: the same identity
    assert [s["files"] for s in seen] == [4, 4, 5, 5, 5]
    assert seen[1]["bytes"] == seen[0]["bytes"] + 4
    assert len({s["fingerprint"] for s in seen}) == 4 and seen[3] == seen[4]


def _partitioned(spark: Any, path: str) -> None:
    spark.range(60).selectExpr("id", "id % 3 AS p").repartition(2).write.partitionBy("p") \
        .parquet(path)


@pytest.mark.parametrize("aqe", ["true", "false"])
@pytest.mark.parametrize(("where", "kept"), [
    (None, {"p=0", "p=1", "p=2"}), ("p = 1", {"p=1"}), ("p IN (0, 2)", {"p=0", "p=2"}),
    ("p = 1 AND id > 3", {"p=1"}), ("p > 5", set())])
def test_a_partition_filter_records_the_files_it_kept(spark: Any, trace: Handle, tmp_path: Path,
                                                      aqe: str, where: str | None,
                                                      kept: set[str]) -> None:
    """The recorded set is the pruned one: the files this action read, not the whole input."""
    path = real(tmp_path) + "/data"
    _partitioned(spark, path)
    spark.conf.set("spark.sql.adaptive.enabled", aqe)
    try:
        df = spark.read.parquet(path)
        (df.where(where) if where else df).count()
    finally:
        spark.conf.unset("spark.sql.adaptive.enabled")
    step = flushed_steps(trace).iloc[-1]
    truth = data_files(path, keep=lambda rel: rel == "." or rel.split("/")[0] in kept)
    assert recorded(step) == identity(truth)
    scans = [dict(o) for o in step["operators"] if o["name"].startswith("Scan")]
    assert [dict(s["metrics"]).get("numFiles", 0) for s in scans] == [len(truth)]
    assert [w for w in step["capture_warnings"] if "input" in w] == []


def test_a_partitioned_catalog_table(spark: Any, trace: Handle, unique: str) -> None:
    """Filtered: Spark listed the kept partitions, recorded. Unfiltered: Spark lists inside the
    scan and keeps nothing, so the identity is null with the reason, never listed again."""
    spark.range(60).selectExpr("id", "id % 3 AS p").write.partitionBy("p").saveAsTable(unique)
    location = spark.sql(f"DESCRIBE TABLE EXTENDED {unique}").where("col_name = 'Location'") \
        .collect()[0]["data_type"]
    root = location.removeprefix("file:")
    spark.table(unique).where("p = 2").count()
    spark.table(unique).count()
    filtered, whole = flushed_steps(trace).iloc[-2:].to_dict("records")
    assert recorded(filtered) == identity(data_files(root, keep=lambda r: r in (".", "p=2")))
    assert filtered["inputs"][0]["path"] == location
    assert recorded(whole) == {"files": None, "bytes": None, "modified_max": None,
                               "fingerprint": None}
    assert any("input files unknown" in w and "CatalogFileIndex" in w
               for w in whole["capture_warnings"])
    spark.sql(f"DROP TABLE {unique}")


@pytest.mark.parametrize("aqe", ["true", "false"])
def test_joins_unions_and_caches(spark: Any, trace: Handle, tmp_path: Path, aqe: str) -> None:
    left, right = real(tmp_path) + "/left", real(tmp_path) + "/right"
    _partitioned(spark, left)
    write_csv(spark, right, rows=30, files=3)
    spark.conf.set("spark.sql.adaptive.enabled", aqe)
    try:
        a = spark.read.parquet(left)
        b = spark.read.csv(right).selectExpr("CAST(_c0 AS BIGINT) AS id")
        a.where("p = 0").join(b, "id").count()
        # one input scanned twice with two filters: the files of both scans, each once
        a.where("p = 0").union(a.where("p = 1")).union(a.where("p = 1 AND id > 10")).count()
        cached = a.where("p = 2").cache()
        cached.count()
        cached.count()  # answered from the cache: its rows came from the files the cache read
        cached.unpersist()
    finally:
        spark.conf.unset("spark.sql.adaptive.enabled")
    join, union, cache1, cache2 = flushed_steps(trace).iloc[-4:].to_dict("records")
    in_partitions = lambda *kept: lambda rel: rel in (".", *kept)  # noqa: E731
    assert [i["name"] for i in join["inputs"]] == [f"file:{left}", f"file:{right}"]
    assert recorded(join, 0) == identity(data_files(left, in_partitions("p=0")))
    assert recorded(join, 1) == identity(data_files(right))
    assert recorded(union) == identity(data_files(left, in_partitions("p=0", "p=1")))
    for step in (cache1, cache2):
        assert recorded(step) == identity(data_files(left, in_partitions("p=2")))


def test_an_input_the_optimizer_never_scans_has_no_identity(spark: Any, trace: Handle,
                                                            tmp_path: Path) -> None:
    path = real(tmp_path) + "/data"
    write_csv(spark, path)
    assert spark.read.csv(path).limit(0).collect() == []
    step = flushed_steps(trace).iloc[-1]
    assert recorded(step)["fingerprint"] is None and recorded(step)["files"] is None
    assert any("no file scan" in w for w in step["capture_warnings"])


def test_two_runs_over_unchanged_inputs_record_one_identity(spark: Any, tmp_path: Path) -> None:
    path = real(tmp_path) + "/data"
    _partitioned(spark, path)
    table = str(tmp_path / "steps")
    runs = []
    for n in (1, 2):
        with pipetrace.attach(spark, table=table, spool=str(tmp_path / "spool"),
                              run_id=f"same-{n}-{tmp_path.name}") as trace:
            spark.read.parquet(path).where("p < 2").count()
            spark.read.parquet(path).count()
            trace.flush()
            runs.append([recorded(s) for s in trace.steps().to_dict("records")])
    assert runs[0] == runs[1]
    report = verify(table=table)  # Java's row hash of the identity (a nested timestamp) = Python's
    assert report.ok and report.rows == 4, report.breaks
    assert runs[0][0] == identity(data_files(path, keep=lambda r: r in (".", "p=0", "p=1")))
    assert runs[0][0] != runs[0][1]


def test_capture_runs_no_job_and_lists_no_directory(spark: Any, tmp_path: Path) -> None:
    """The identity comes from the listing Spark made when the DataFrame was created: the
    action with capture runs as many jobs as without (none of pipetrace's own), and Spark's
    count of files discovered by listing does not move while it is captured and written."""
    path = real(tmp_path) + "/data"
    _partitioned(spark, path)
    tracker = spark.sparkContext.statusTracker()
    discovered = spark._jvm.org.apache.spark.metrics.source.HiveCatalogMetrics \
        .METRIC_FILES_DISCOVERED()

    def run(df: Any, flush: Callable[[], Any]) -> tuple[int, int]:
        jobs, listed = set(tracker.getJobIdsForGroup(None)), discovered.getCount()
        df.where("p = 1").count()
        flush()
        return len(set(tracker.getJobIdsForGroup(None)) - jobs), discovered.getCount() - listed

    baseline = run(spark.read.parquet(path), lambda: None)
    with pipetrace.attach(spark, table=str(tmp_path / "steps"), spool=str(tmp_path / "spool"),
                          run_id=f"nojob-{tmp_path.name}") as trace:
        df = spark.read.parquet(path)  # Spark lists here, before the action
        captured = run(df, trace.flush)
        step = trace.steps().iloc[-1]
    assert captured == baseline and baseline[1] == 0
    assert recorded(step)["files"] == len(data_files(path, keep=lambda r: r in (".", "p=1")))


def test_paths_in_the_identity_are_redacted(spark: Any, trace: Handle, tmp_path: Path) -> None:
    path = real(tmp_path) + f"/{SECRET}/data"
    write_csv(spark, path)
    spark.read.csv(path).count()
    step = flushed_steps(trace).iloc[-1]
    source = dict(step["inputs"][0])
    assert SECRET not in str(source) and MASK in source["path"]
    assert recorded(step) == identity(data_files(path), redact=lambda p: p.replace(SECRET, MASK))


# --- item 6: one name and one path per table, whichever way the code spells it ---------------

def _io(step: dict[str, Any]) -> tuple[Any, ...]:
    """(name, path) of the step's output, or of its only input."""
    if step["output"] is not None:
        return step["output"]["name"], step["output"]["path"]
    (source,) = step["inputs"]
    return source["name"], source["path"]


def _location(spark: Any, table: str) -> str:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {table}").where("col_name = 'Location'").collect()
    return rows[0]["data_type"]


def test_a_managed_table_has_one_name_and_path(spark: Any, trace: Handle, unique: str) -> None:
    spark.range(5).write.saveAsTable(unique)
    spark.table(f"spark_catalog.default.{unique}").count()
    spark.sql(f"SELECT * FROM default.{unique}").collect()
    spark.sql(f"CREATE TABLE {unique}_ctas USING parquet AS SELECT * FROM {unique}")
    steps = flushed_steps(trace).to_dict("records")[-4:]
    location = _location(spark, unique)
    assert os.path.isdir(location.removeprefix("file:"))
    expected = (f"spark_catalog.default.{unique}", location)
    assert [_io(s) for s in steps[:3]] == [expected] * 3
    ctas = steps[3]
    assert [(i["name"], i["path"]) for i in ctas["inputs"]] == [expected]
    assert _io(ctas) == (f"spark_catalog.default.{unique}_ctas",
                         _location(spark, f"{unique}_ctas"))
    spark.sql(f"DROP TABLE {unique}")
    spark.sql(f"DROP TABLE {unique}_ctas")


def test_an_external_table_has_one_name_and_path(spark: Any, trace: Handle, tmp_path: Path,
                                                 unique: str) -> None:
    path = real(tmp_path) + "/ext"
    spark.sql(f"CREATE TABLE {unique} USING parquet LOCATION '{path}' AS SELECT * FROM range(4)")
    spark.range(4, 6).write.insertInto(unique)
    spark.table(unique).count()
    spark.read.parquet(path).count()  # the same files read by path: the same path
    ctas, insert, by_name, by_path = flushed_steps(trace).to_dict("records")[-4:]
    expected = (f"spark_catalog.default.{unique}", f"file:{path}")
    assert _io(ctas) == _io(insert) == _io(by_name) == expected
    assert _io(by_path) == (f"file:{path}", f"file:{path}")
    assert recorded(by_name) == recorded(by_path) == identity(data_files(path))
    spark.sql(f"DROP TABLE {unique}")


def test_a_path_has_one_name_however_it_is_spelled(spark: Any, trace: Handle,
                                                   tmp_path: Path) -> None:
    path = real(tmp_path) + "/data"
    cwd = spark._jvm.java.lang.System.getProperty("user.dir")  # the driver resolves relative paths
    relative = os.path.relpath(path, cwd)
    spark.range(8).write.parquet(relative)
    spark.range(8).write.mode("append").parquet(f"file://{path}/")
    for spelling in (path, f"{path}/", f"file://{path}", f"file:{path}", relative):
        spark.read.parquet(spelling).count()
    steps = flushed_steps(trace).to_dict("records")[-7:]
    assert {_io(s) for s in steps} == {(f"file:{path}", f"file:{path}")}
    assert len({recorded(s)["fingerprint"] for s in steps[2:]}) == 1


# --- the shipped audit query: which inputs each run read, and whether the previous run did ----

def _audit_rows(table: str, run_id: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "pipetrace", "audit", "inputs-identity",
                           "--run-id", run_id, "--table", table, "--format", "json"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_inputs_identity_audit_query(spark: Any, tmp_path: Path) -> None:
    same, changed = real(tmp_path) + "/same", real(tmp_path) + "/changed"
    write_csv(spark, same)
    write_csv(spark, changed)
    table, runs, truths = str(tmp_path / "steps"), [], []
    for n in (1, 2):
        if n == 2:  # between the runs one input gains a file
            first = sorted(f for f in os.listdir(changed) if f.startswith("part-"))[0]
            shutil.copy(os.path.join(changed, first), os.path.join(changed, "part-new.csv"))
        run_id = f"inputs-{n}-{tmp_path.name}"
        with pipetrace.attach(spark, table=table, spool=str(tmp_path / "spool"), run_id=run_id,
                              tags={"job": f"identity-{tmp_path.name}"}) as trace:
            spark.read.csv(same).count()
            spark.read.csv(changed).join(spark.read.csv(same), "_c0").count()
            spark.range(3).count()  # not data read from storage: not listed
            trace.flush()
        runs.append(run_id)
        truths.append({p: "sha256 " + identity(data_files(p))["fingerprint"]
                       for p in (same, changed)})

    expected = sorted([
        (f"file:{same}", truths[1][same], "same"),
        (f"file:{changed}", truths[1][changed], "only_this_run"),
        (f"file:{changed}", truths[0][changed], "only_previous_run")])
    # (CSV schema inference also reads each input's files, listed one by one, as a text input)
    rows = [r for r in _audit_rows(table, runs[1]) if r["input_format"] == "csv"]
    assert sorted((r["input_path"], r["identity"], r["previous_run"]) for r in rows) == expected
    assert {(r["run_id"], r["previous_run_id"]) for r in rows} == {(runs[1], runs[0])}
    mine = {r["input_path"]: r for r in rows if r["previous_run"] != "only_previous_run"}
    assert mine[f"file:{same}"]["steps"] == 2 and mine[f"file:{same}"]["files"] == 4
    assert mine[f"file:{changed}"]["files"] == 5

    # The Databricks (Spark SQL) text of the same query, on the same rows, answers the same.
    spark.read.parquet(table).createOrReplaceTempView("identity_steps")
    spark_rows = spark.sql(query_text("inputs-identity"),
                           args={"steps_table": "identity_steps", "run_id": runs[1]}).collect()
    assert sorted((r["input_path"], r["identity"], r["previous_run"]) for r in spark_rows
                  if r["input_format"] == "csv") == expected
