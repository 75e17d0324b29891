"""One wheel, several Spark lines: the loader picks the running Spark's jar and refuses, up front
and saying what to do, an unsupported Spark or a jar of another line (issue 10).

Runs in every CI lane (.ci/lanes), so each supported pyspark checks its own line."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pipetrace import _jvm
from pipetrace.errors import JarNotFoundError, JvmError

LINES = {line["line"]: line for line in _jvm.spark_lines()}


@pytest.mark.parametrize(("version", "line"), [
    ("3.5.0", "spark35"), ("3.5.9", "spark35"), ("4.0.5", "spark4"), ("4.1.4", "spark4"),
    ("4.3.0", "spark4"), ("4.2.0-SNAPSHOT", "spark4"), ("3.5.2-databricks", "spark35"),
])
def test_each_supported_spark_gets_its_lines_jar(version: str, line: str) -> None:
    assert _jvm.spark_line(version)["line"] == line
    assert _jvm.jar_path(version).name == LINES[line]["jar"]


@pytest.mark.parametrize("version", ["3.4.1", "3.3.0", "5.0.0", "2.4.8", "unknown"])
def test_an_unsupported_spark_is_refused_with_what_to_do(version: str) -> None:
    with pytest.raises(JvmError, match=r"supports Spark 3\.5 .* and Spark 4\.x .*pyspark>=3\.5,<5"):
        _jvm.spark_line(version)


def _other_line(spark_version: str) -> dict[str, Any]:
    mine = _jvm.spark_line(spark_version)["line"]
    return next(line for name, line in LINES.items() if name != mine)


def test_the_jar_of_another_line_is_refused_before_the_driver_is_touched(spark: Any) -> None:
    other = _jvm.JAR_DIR / _other_line(spark.version)["jar"]
    if not other.is_file():
        pytest.skip(f"{other.name} is not built here (python jvm_shim/build_jar.py --all-lines)")
    with pytest.raises(JvmError, match=rf"needs {_jvm.spark_line(spark.version)['jar']}"):
        _jvm.check_jar(other, spark.version)
    _jvm.check_jar(_jvm.jar_path(spark.version), spark.version)  # its own line passes


def test_the_jvm_refuses_a_jar_of_another_line_on_its_own(spark: Any) -> None:
    """The init script path has no Python check: loaded into a Spark of another line, the jar's
    own SparkCompat refuses (and the listener stays off) instead of failing on each event."""
    other = _jvm.JAR_DIR / _other_line(spark.version)["jar"]
    if not other.is_file():
        pytest.skip(f"{other.name} is not built here (python jvm_shim/build_jar.py --all-lines)")
    jvm = spark.sparkContext._jvm
    gateway = spark.sparkContext._gateway
    urls = gateway.new_array(jvm.java.net.URL, 1)
    urls[0] = jvm.java.io.File(str(other)).toURI().toURL()
    # A loader of its own, under the system loader (Spark's classes, not pipetrace's own jar).
    loader = jvm.java.net.URLClassLoader(urls, jvm.java.lang.ClassLoader.getSystemClassLoader())
    compat = jvm.java.lang.Class.forName("io.pipetrace.compat.SparkCompat", True, loader)
    get = compat.getMethod("get", gateway.new_array(jvm.java.lang.Class, 0))
    with pytest.raises(Exception, match="built for another Spark line") as raised:
        get.invoke(None, gateway.new_array(jvm.java.lang.Object, 0))
    assert _jvm.spark_line(spark.version)["jar"] in str(raised.value)
    loader.close()


def test_a_missing_line_jar_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(_jvm, "JAR_DIR", tmp_path)
    with pytest.raises(JarNotFoundError, match=r"pipetrace-shim-spark35_2\.12\.jar.*--all-lines"):
        _jvm._require_jar("3.5.1")


def test_a_jar_without_a_line_is_judged_by_its_spark_version(tmp_path: Path) -> None:
    old = tmp_path / "pipetrace-shim.jar"  # as built before the lines existed
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nSpark-Version: 4.3.0\n")
    _jvm.check_jar(old, "4.0.5")
    with pytest.raises(JvmError, match=r"line spark4 \(Spark 4\.3\.0\).*Spark 3\.5\.9"):
        _jvm.check_jar(old, "3.5.9")


@pytest.mark.skipif(not os.environ.get("PIPETRACE_LANE"), reason="only in a CI lane (.ci/lanes)")
def test_a_lane_runs_the_jar_the_wheel_ships(spark: Any) -> None:
    """A lane must prove the shipped binary, not a jar rebuilt against the lane's Spark."""
    assert spark.version == os.environ["PIPETRACE_LANE"]
    line = _jvm.spark_line(spark.version)
    manifest = _jvm.jar_manifest(_jvm.jar_path(spark.version))
    assert manifest["Spark-Line"] == line["line"]
    assert manifest["Spark-Version"] == line["compile_against"]
