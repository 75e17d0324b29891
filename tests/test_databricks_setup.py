"""The cluster init script under a temp root, end to end with a local spark-submit."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pyspark
import pytest

from pipetrace._jvm import JAR_DIR, jar_path, spark_line, spark_lines
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


def _wheel(tmp_path: Path, *jars: Path) -> Path:
    """A wheel as far as the init script reads one: the line table and the line jars."""
    wheel = tmp_path / "pipetrace-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:  # the jars travel inside the wheel
        for jar in jars:
            whl.write(jar, f"pipetrace/jars/{jar.name}")
        whl.write(JAR_DIR.parent / "resources" / "spark_lines.json",
                  "pipetrace/resources/spark_lines.json")
    return wheel


def test_init_script_output_captures_a_spark_submit_end_to_end(tmp_path):
    root = tmp_path / "root"
    _wheel(tmp_path, jar_path())
    done = _run_init(root, PIPETRACE_WHEEL=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "capture is ON" in done.stderr
    assert f"installed {root}/databricks/jars/pipetrace-shim.jar: {jar_path().name}" in done.stderr
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
    old = _run_init(root, PIPETRACE_JAR=str(jar_path()), DATABRICKS_RUNTIME_VERSION="13.3")
    assert old.returncode == 0 and "Runtime 13.3 is older than 14.0" in old.stderr
    assert not (root / "databricks" / "jars" / "pipetrace-shim.jar").exists()


@pytest.mark.parametrize(("runtime", "line"), [
    ("14.3", "spark35"), ("15.4", "spark35"), ("16.4", "spark35"), ("17.3", "spark4"),
    ("18.0", "spark4")])
def test_init_script_installs_the_jar_of_the_runtimes_spark_line(tmp_path, runtime, line):
    jars = [JAR_DIR / x["jar"] for x in spark_lines()]
    if not all(j.is_file() for j in jars):
        pytest.skip("needs every line's jar: python jvm_shim/build_jar.py --all-lines")
    root = tmp_path / "root"
    _wheel(tmp_path, *jars)
    done = _run_init(root, PIPETRACE_WHEEL=str(tmp_path), DATABRICKS_RUNTIME_VERSION=runtime)
    assert done.returncode == 0 and "capture is ON" in done.stderr, done.stderr
    installed = root / "databricks" / "jars" / "pipetrace-shim.jar"
    with zipfile.ZipFile(installed) as jar:
        assert f"Spark-Line: {line}" in jar.read("META-INF/MANIFEST.MF").decode()


def test_init_script_refuses_a_jar_of_another_line_or_a_one_line_wheel(tmp_path):
    mine = spark_line(pyspark.__version__)
    root = tmp_path / "root"
    _wheel(tmp_path, jar_path())  # as `pip wheel .` without PIPETRACE_SPARK_LINES=all builds
    runtime = "15.4" if mine["line"] == "spark4" else "17.3"
    done = _run_init(root, PIPETRACE_WHEEL=str(tmp_path), DATABRICKS_RUNTIME_VERSION=runtime)
    assert done.returncode == 0 and "capture is OFF" in done.stderr
    assert "PIPETRACE_SPARK_LINES=all" in done.stderr
    wrong = _run_init(root, PIPETRACE_JAR=str(jar_path()), DATABRICKS_RUNTIME_VERSION=runtime)
    assert wrong.returncode == 0 and "capture is OFF" in wrong.stderr
    assert f"built for the Spark line {mine['line']}" in wrong.stderr
    assert not (root / "databricks" / "driver" / "conf" / "00-pipetrace.conf").exists()


def test_cli_prints_the_init_script():
    done = subprocess.run([sys.executable, "-m", "pipetrace", "databricks", "init-script",
                           "--table", "main.audit.pipeline_steps"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("#!/bin/bash")
    assert 'PIPETRACE_TABLE:-main.audit.pipeline_steps' in done.stdout
