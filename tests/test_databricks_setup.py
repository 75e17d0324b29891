"""The cluster init script under a temp root, end to end with a local spark-submit."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pyspark

from pipetrace._jvm import jar_path
from pipetrace.databricks import init_script, read_driver_conf
from pipetrace.query import steps

PIPELINE = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").appName("init-e2e").getOrCreate()
df = spark.range(100).selectExpr("id", "id % 3 AS k")
df.groupBy("k").count().collect()
df.where("k = 1").count()
spark.stop()
"""


def _run_init(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = root.parent / "init.sh"
    script.write_text(init_script(table=str(root.parent / "table"), spool=str(root.parent / "spool")))
    full = {"PATH": os.environ["PATH"], "PIPETRACE_INIT_ROOT": str(root), **env}
    return subprocess.run(["bash", str(script)], env=full, capture_output=True, text=True,
                          check=False)


def test_init_script_output_captures_a_spark_submit_end_to_end(tmp_path):
    root = tmp_path / "root"
    wheel = tmp_path / "pipetrace-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:  # the jar travels inside the wheel
        whl.write(jar_path(), "pipetrace/jars/pipetrace-shim.jar")
    done = _run_init(root, PIPETRACE_WHEEL=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "capture is ON" in done.stderr
    jar = root / "databricks" / "jars" / "pipetrace-shim.jar"
    conf = read_driver_conf(root / "databricks" / "driver" / "conf" / "00-pipetrace.conf")
    assert conf["spark.sql.queryExecutionListeners"] == "io.pipetrace.PipetraceListener"
    assert conf["spark.pipetrace.table"] == str(tmp_path / "table")

    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    args = [str(submit), "--driver-class-path", str(jar)]
    for key, value in {**conf, "spark.pipetrace.run_id": "init-e2e"}.items():
        args += ["--conf", f"{key}={value}"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    ran = subprocess.run([*args, str(script)], env=env, capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr[-3000:]
    ingested = subprocess.run([sys.executable, "-m", "pipetrace", "ingest", "--spool",
                               conf["spark.pipetrace.spool"], "--table", conf["spark.pipetrace.table"]],
                              capture_output=True, text=True, check=False)
    assert ingested.returncode == 0, ingested.stderr
    frame = steps("init-e2e", table=conf["spark.pipetrace.table"])
    assert frame["action"].tolist() == ["collect", "count"]
    assert frame["rows_out"].tolist()[1] == 33


def test_init_script_never_fails_the_cluster(tmp_path):
    root = tmp_path / "root"
    missing = _run_init(root)  # neither a wheel nor a jar
    assert missing.returncode == 0
    assert "capture is OFF" in missing.stderr
    assert not (root / "databricks" / "driver" / "conf" / "00-pipetrace.conf").exists()
    bad = tmp_path / "bad.jar"
    bad.write_bytes(b"not a jar")
    broken = _run_init(root, PIPETRACE_JAR=str(bad))
    assert broken.returncode == 0 and "capture is OFF" in broken.stderr
    assert not (root / "databricks" / "jars" / "pipetrace-shim.jar").exists()
    old = _run_init(root, PIPETRACE_JAR=str(jar_path()), DATABRICKS_RUNTIME_VERSION="15.4")
    assert old.returncode == 0 and "older than 17" in old.stderr


def test_cli_prints_the_init_script():
    done = subprocess.run([sys.executable, "-m", "pipetrace", "databricks", "init-script",
                           "--table", "main.audit.pipeline_steps"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("#!/bin/bash")
    assert 'PIPETRACE_TABLE:-main.audit.pipeline_steps' in done.stdout
