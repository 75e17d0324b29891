"""Counts stay true when Spark re-runs a stage, as it does on a cluster when a shuffle output is
lost (an executor or node gone, a spot instance reclaimed).

The script below loses a shuffle output for real: a Python UDF in the map stage, on its last
partition's first attempt, deletes the shuffle files its stage's earlier partitions already
wrote. The next stage's read of them fails (FetchFailed), and Spark re-runs the map stage: its
partitions finish twice. pipetrace sums task metrics itself, so it must count each partition
once (first success per partition); a measured filter's observed metrics are Spark's own, which
Spark keeps exact through the re-run (checked here against the truth, so a Spark that did not
would fail this test). It runs in its own process: deleting shuffle files needs a Spark local
dir of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_faults import env_for

SCRIPT = r"""
import glob, json, os, sys
from pyspark import TaskContext
from pyspark.sql import SparkSession, functions as F
import pipetrace

table, local, marker = sys.argv[1], sys.argv[2], sys.argv[3]
spark = (SparkSession.builder.master("local[1]").config("spark.local.dir", local)
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
         .config("spark.sql.adaptive.enabled", sys.argv[4]).getOrCreate())


@F.udf("long")
def lose_shuffle_once(x):
    tc = TaskContext.get()
    if tc.partitionId() == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        for path in glob.glob(os.path.join(local, "**", "shuffle_*.data"), recursive=True):
            os.remove(path)
    return x


trace = pipetrace.attach(spark, table=table, measure_steps=True, run_id="reruns")
df = spark.range(0, 40_000, 1, 4).filter("id % 3 = 0").withColumn("y", lose_shuffle_once("id"))
result = df.groupBy((F.col("y") % 10).alias("k")).count().collect()
trace.flush()
step = trace.steps().to_dict("records")[-1]
trace.detach()
status = spark.sparkContext.statusTracker()
print(json.dumps({"lost": os.path.exists(marker), "groups": len(result),
                  "reran": any(status.getStageInfo(s) is not None
                               and status.getStageInfo(s).currentAttemptId > 0
                               for s in range(0, 8)),
                  "counted": sum(r["count"] for r in result),
                  "rows_out": step["rows_out"], "warnings": list(step["capture_warnings"]),
                  "operators": [{k: op[k] for k in ("name", "rows_out")}
                                for op in step["operators"]],
                  "logical_steps": [{k: s[k] for k in ("kind", "rows_in", "rows_out", "exact",
                                                       "rows_unknown")}
                                    for s in step["logical_steps"]]}, default=str))
"""


@pytest.mark.parametrize("aqe", ["true", "false"], ids=["aqe", "no-aqe"])
def test_a_stage_rerun_after_a_lost_shuffle_keeps_counts_true(tmp_path: Path, aqe: str) -> None:
    script = tmp_path / "reruns.py"
    script.write_text(SCRIPT)
    local = tmp_path / "local"
    local.mkdir()
    job = subprocess.run([sys.executable, str(script), str(tmp_path / "pipeline_steps"),
                          str(local), str(tmp_path / "lost"), aqe],
                         env=env_for(tmp_path / "home"), text=True, capture_output=True,
                         timeout=300, check=False)
    assert job.returncode == 0, job.stderr[-4000:]
    assert "FetchFailed" in job.stderr, "the shuffle output was not lost: nothing re-ran"
    out = json.loads(job.stdout.strip().splitlines()[-1])
    kept = len(range(0, 40_000, 3))  # the truth: rows with id % 3 = 0
    assert out["lost"] and out["counted"] == kept and out["groups"] == 10
    assert out["rows_out"] == 10
    ops = {op["name"]: op["rows_out"] for op in out["operators"]}
    # SQL metrics: each partition once, although the re-run partitions finished twice
    assert ops["Filter"] == kept and ops["Range"] == 40_000, out["operators"]
    [measured] = [s for s in out["logical_steps"] if s["kind"] == "filter"]
    assert (measured["rows_in"], measured["rows_out"], measured["exact"]) == (40_000, kept, True)
    assert out["reran"], "no partition finished twice: the stage was not re-run"
