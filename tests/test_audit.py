"""The shipped audit SQL against a real local table, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from importlib import resources
from pathlib import Path

import pytest

import pipetrace
from pipetrace.audit import QUERIES


def _audit(table: str, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "pipetrace", "audit", *args, "--table", table,
                           "--format", "json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _options(params: dict[str, str]) -> list[str]:
    return [arg for key, value in params.items() for arg in (f"--{key.replace('_', '-')}", value)]


def test_audit_queries(spark, tmp_path):
    table = str(tmp_path / "pipeline_steps")
    runs = []
    for limit in (10, 20):  # two runs of the same job; the second plan differs at step 1
        run_id = f"audit-{limit}-{uuid.uuid4().hex[:6]}"
        with pipetrace.attach(spark, table=table, spool=str(tmp_path / "spool"), run_id=run_id,
                              tags={"job": "nightly"}) as trace:
            src = tmp_path / f"src{limit}"
            spark.range(limit).write.parquet(str(src))
            spark.read.parquet(str(src)).where("id > 2").count()
            try:
                spark.sql("SELECT CAST('x' AS INT) AS bad").collect()
            except Exception:  # noqa: BLE001 - the failed step is the point
                pass
            trace.flush()
        runs.append(run_id)

    overview = _audit(table, "runs")
    assert [r["run_id"] for r in overview] == runs[::-1]
    assert overview[0]["steps"] == 3 and overview[0]["failed_steps"] == 1

    flow = _audit(table, "run-steps", "--run-id", runs[1])
    counted = [r for r in flow if r["seq"] == 2]
    assert {r["operator"] for r in counted} >= {"Filter"}
    assert any(r["operator"] == "Filter" and r["operator_rows_out"] == 17 for r in counted)

    failed = _audit(table, "failed")
    assert len(failed) == 2 and all("CAST" in r["error"] or "cast" in r["error"].lower()
                                    for r in failed)

    lineage = _audit(table, "lineage", "--run-id", runs[1])
    assert any(r["output_name"] and r["output_name"].endswith("src20") for r in lineage)
    assert any(r["input_name"] and r["input_name"].endswith("src20") for r in lineage)

    changed = _audit(table, "fingerprint-changes", "--run-id", runs[1])
    assert changed and all(r["previous_run_id"] == runs[0] for r in changed)
    assert 1 in {r["seq"] for r in changed}

    # Attrition in one query: the filter kept 17 of the 20 rows it was given.
    attrition = _audit(table, "attrition", "--run-id", runs[1])
    kept = [r for r in attrition if r["seq"] == 2 and r["operator"] == "Filter"]
    assert [(r["rows_in"], r["rows_out"], r["rows_removed"]) for r in kept] == [(20, 17, 3)]
    assert kept[0]["share_removed"] == pytest.approx(0.15)

    # Where each step came from: one row per step, in order.
    sources = _audit(table, "step-sources", "--run-id", runs[1])
    assert [r["seq"] for r in sources] == [1, 2, 3]
    assert sources[0]["output_name"].endswith("src20")

    # The Databricks-dialect files the bundle ships run as printed in Spark SQL too: the table
    # as a view over its (append-only, so all live) parquet files, the parameters as Spark's
    # named parameters.
    spark.read.parquet(table).createOrReplaceTempView("audit_steps")
    spark.read.parquet(str(tmp_path / "pipeline_runs")).createOrReplaceTempView("audit_runs")
    written = next(r["output_name"] for r in lineage if r["output_name"])
    values = {"run_id": runs[1], "output": written, "column": "id"}
    for name, (stem, params) in QUERIES.items():
        text = (resources.files("pipetrace") / "resources" / "sql" / f"{stem}.sql").read_text()
        args = {"steps_table": "audit_steps", **{p: values[p] for p in params}}
        if ":runs_table" in text:
            args["runs_table"] = "audit_runs"
        rows = spark.sql(text, args=args).collect()
        local = _audit(table, name, *_options({p: values[p] for p in params}))
        assert len(rows) == len(local), name
        assert rows or name == "models", name  # this run fitted no model
    # A step without operators (it failed before running) is still one of the run's steps.
    failed_step = [r for r in _audit(table, "run-steps", "--run-id", runs[1]) if r["seq"] == 3]
    assert [(r["status"], r["operator"]) for r in failed_step] == [("FAILED", None)]


def test_sql_takes_a_query_that_starts_with_a_comment(spark, tmp_path):
    table = str(tmp_path / "pipeline_steps")
    with pipetrace.attach(spark, table=table, spool=str(tmp_path / "spool")) as trace:
        spark.range(3).count()
        trace.flush()
    done = subprocess.run([sys.executable, "-m", "pipetrace", "sql", "--table", table,
                           "-- how many steps?\nSELECT count(*) AS n FROM pipeline_steps",
                           "--format", "json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": 1}]


@pytest.mark.slow
def test_the_installed_wheel_runs_every_audit_query(spark, tmp_path):
    """A normal (non-editable) install: the wheel built from the sources, installed on its own."""
    table = str(tmp_path / "pipeline_steps")
    with pipetrace.attach(spark, table=table, spool=str(tmp_path / "spool")) as trace:
        spark.range(10).filter("id > 4").count()
        trace.flush()
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, text=True,
                             check=True).stdout.split()
    for rel in tracked:
        if (root / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, source / rel)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", str(source), "-w", str(tmp_path / "dist")],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("pipetrace-*.whl"))
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                                "--target", str(site), str(wheel)],
                               capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import pipetrace; print(pipetrace.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where
    given = {"output": "x", "column": "id"}  # column-lineage's own parameters
    for name, (_, params) in QUERIES.items():
        extra = _options({p: given[p] for p in params if p in given})
        done = subprocess.run([sys.executable, "-m", "pipetrace", "audit", name, "--table", table,
                               "--format", "json", *extra], env=env, capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, (name, done.stderr[-2000:])
        assert isinstance(json.loads(done.stdout), list)
