"""The Py4J boundary: the only module that touches Spark's JVM from Python.

The contract with the JVM shim is tiny: JSON strings in, JSON strings out, through one
``io.pipetrace.Bridge`` object (in the spirit of mlflow's Spark autologging, without a Py4J
callback server and without classes placed in Spark's packages).
"""

from __future__ import annotations

import json
import zipfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypedDict

from pipetrace.errors import JarNotFoundError, JvmError, SparkConnectError, UnsupportedModeError

__all__ = ["BRIDGE_CLASS", "LISTENER_CLASS", "STREAM_LISTENER_CLASS", "JvmBridge", "SparkLine",
           "check_jar", "is_blocked_jvm_error", "jar_path", "spark_line"]

LISTENER_CLASS = "io.pipetrace.PipetraceListener"
# Registered beside it: names the sink of each streaming query, so its batches name it too.
STREAM_LISTENER_CLASS = "io.pipetrace.StreamSinks"
BRIDGE_CLASS = "io.pipetrace.Bridge"
JAR_DIR = Path(__file__).resolve().parent / "jars"


class SparkLine(TypedDict):
    """One entry of ``resources/spark_lines.json``: a Spark range and the jar built for it."""

    line: str
    scala: str
    spark_min: str
    spark_below: str
    jar: str
    compile_against: str
    tested: list[str]
    databricks_runtime_min: str


@cache
def spark_lines() -> list[SparkLine]:
    """The Spark lines pipetrace ships a jar for (the table the jar build reads too).

    Example::

        >>> [line["line"] for line in spark_lines()]
        ['spark35', 'spark4']
    """
    text = resources.files("pipetrace").joinpath("resources", "spark_lines.json").read_text(
        encoding="utf-8")
    return json.loads(text)["lines"]


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for part in str(version).split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit()) if part else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def spark_line(spark_version: str) -> SparkLine:
    """The line whose jar runs on ``spark_version``; :class:`JvmError` if none does.

    Example::

        >>> spark_line("4.0.5")["jar"]
        'pipetrace-shim-spark4_2.13.jar'
        >>> spark_line("3.4.1")
        Traceback (most recent call last):
        ...
        pipetrace.errors.JvmError: pipetrace supports Spark 3.5 (Scala 2.12) and Spark 4.x (Scala 2.13); ...
    """
    key = _version_key(spark_version)
    for line in spark_lines():
        if _version_key(line["spark_min"]) <= key < _version_key(line["spark_below"]):
            return line
    raise JvmError(
        f"pipetrace supports Spark 3.5 (Scala 2.12) and Spark 4.x (Scala 2.13); this is Spark "
        f"{spark_version}, where its listener cannot load. Use a supported Spark (pip install "
        "'pyspark>=3.5,<5'; on Databricks, Runtime 14.0 or newer) or leave pipetrace off.")


def _installed_spark_version() -> str:
    import pyspark

    return str(pyspark.__version__)


def jar_path(spark_version: str | None = None) -> Path:
    """The listener jar for ``spark_version`` (default: the installed pyspark's) in the package.

    Example::

        >>> jar_path("4.3.0").name
        'pipetrace-shim-spark4_2.13.jar'
        >>> jar_path("3.5.8").name
        'pipetrace-shim-spark35_2.12.jar'
    """
    return JAR_DIR / spark_line(spark_version or _installed_spark_version())["jar"]


def jar_manifest(jar: Path) -> dict[str, str]:
    """The jar's MANIFEST main attributes (``Spark-Line``, ``Spark-Version``...), or {}.

    Example::

        >>> jar_manifest(jar_path())["Spark-Line"]  # doctest: +SKIP
        'spark4'
    """
    try:
        with zipfile.ZipFile(jar) as zf:
            manifest = zf.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return {}
    out: dict[str, str] = {}
    for row in manifest.splitlines():
        key, _, value = row.partition(":")
        if key.strip() and value.strip():
            out[key.strip()] = value.strip()
    return out


def jar_spark_version(jar: Path) -> str | None:
    """The ``Spark-Version`` the jar was compiled against (its MANIFEST), or None if unknown.

    Example::

        >>> jar_spark_version(jar_path())  # doctest: +SKIP
        '4.0.5'
    """
    return jar_manifest(jar).get("Spark-Version")


def check_jar(jar: Path, spark_version: str) -> None:
    """Raise :class:`JvmError` unless ``jar`` was built for the Spark line of ``spark_version``.

    A jar of another line (Scala 2.12 vs 2.13, or a Spark 3.5 jar on Spark 4) would fail later,
    inside the driver, with a ``NoSuchMethodError`` on the listener thread; this says it up
    front instead. A jar without the information passes.

    Example::

        >>> check_jar(jar_path("4.3.0"), "4.3.0")  # doctest: +SKIP
    """
    wanted = spark_line(spark_version)
    manifest = jar_manifest(jar)
    built = manifest.get("Spark-Version")
    if built is None:
        return
    try:
        # jars from before the lines had no Spark-Line: their Spark-Version tells the line
        built_line = manifest.get("Spark-Line") or spark_line(built)["line"]
    except JvmError:
        built_line = f"Spark {built}"
    if built_line != wanted["line"]:
        raise JvmError(
            f"{jar} was built for the Spark line {built_line} (Spark {built}), but this is Spark "
            f"{spark_version}, which needs {wanted['jar']} (line {wanted['line']}, Scala "
            f"{wanted['scala']}): the listener would not load. Use that jar from the same "
            "pipetrace wheel, or reinstall pipetrace with this pyspark installed "
            f"(pip install --force-reinstall pipetrace, with pyspark {spark_version})")


def _require_jar(spark_version: str) -> Path:
    jar = jar_path(spark_version)
    if not jar.is_file():
        present = sorted(p.name for p in JAR_DIR.glob("*.jar")) or ["none"]
        raise JarNotFoundError(
            f"the pipetrace listener jar for Spark {spark_version} is missing ({jar}; this "
            f"install has: {', '.join(present)}). Jars are built when the package is installed, "
            "for the installed pyspark's line: reinstall with `pip install .` next to this "
            "pyspark (a JDK 17+ with javac is needed), or build every line with "
            "`python jvm_shim/build_jar.py --all-lines --out python/pipetrace/jars`")
    return jar


_CLUSTER_SETUP = (
    "Capture needs the cluster-level setup instead: a dedicated (single user) access-mode "
    "cluster with pipetrace's init script (`pipetrace databricks init-script`, or the bundle: "
    "`databricks bundle deploy`), which puts the listener jar on the driver classpath and "
    f"sets spark.sql.queryExecutionListeners={LISTENER_CLASS}. See the README's Databricks section.")


def is_blocked_jvm_error(exc: BaseException) -> bool:
    """True when ``exc`` is Databricks refusing Py4J access (standard / shared access mode).

    Example::

        >>> is_blocked_jvm_error(Exception("py4j.security.Py4JSecurityException: Method public "
        ...     "... is not whitelisted on class class java.lang.Class"))
        True
    """
    text = f"{type(exc).__name__}: {exc}"
    return "Py4JSecurityException" in text or "is not whitelisted" in text


def _check_session(spark: Any) -> None:
    module = type(spark).__module__
    if module.startswith("pyspark.sql.connect") or not hasattr(spark, "_jsparkSession"):
        raise SparkConnectError(
            "this is a Spark Connect session (Databricks serverless and standard/shared access "
            "mode are Spark Connect too): its driver JVM is out of Python's reach, so attach() "
            "cannot load the listener. " + _CLUSTER_SETUP)
    spark_line(str(spark.version))  # an unsupported Spark is refused before the JVM is touched


# The Bridge class loaded into each driver JVM (by the gateway's id). A new SparkSession after
# spark.stop() comes with a new jar class loader: loading the jar again there gives a second
# class of the same name, and Py4J, which caches methods by class name, then calls the first
# class's methods on the second's object ("object is not an instance of declaring class").
_LOADED: dict[int, Any] = {}


class JvmBridge:
    """The session's ``io.pipetrace.Bridge``, loaded into the running driver if needed."""

    def __init__(self, spark: Any) -> None:
        _check_session(spark)
        try:
            self._jss = spark._jsparkSession
            self._bridge = self._load(spark)
        except Exception as exc:  # classify Databricks' Py4J allow-list refusals
            if is_blocked_jvm_error(exc):
                raise UnsupportedModeError(
                    "this cluster does not let Python reach the driver JVM (standard/shared "
                    "access mode blocks Py4J calls: " + str(exc).splitlines()[0][:200] + "). "
                    + _CLUSTER_SETUP) from exc
            raise

    def _load(self, spark: Any) -> Any:
        jvm = spark.sparkContext._jvm
        gateway = spark.sparkContext._gateway
        version = str(spark.version)
        if jar_path(version).is_file():  # before anything reaches the driver
            check_jar(jar_path(version), version)
        cls = _LOADED.get(id(gateway))
        if cls is None:
            cls = self._load_class(jvm, version)
            _LOADED[id(gateway)] = cls
        no_types = gateway.new_array(jvm.java.lang.Class, 0)
        no_args = gateway.new_array(jvm.java.lang.Object, 0)
        return cls.getDeclaredConstructor(no_types).newInstance(no_args)

    def _load_class(self, jvm: Any, spark_version: str) -> Any:
        # The session's jar class loader takes new jars at runtime: no restart, and the class
        # is found from the driver classpath first when a cluster already ships the jar.
        loader = self._jss.sharedState().jarClassLoader()
        try:
            return jvm.java.lang.Class.forName(BRIDGE_CLASS, True, loader)
        except Exception:  # noqa: BLE001 - Py4JJavaError(ClassNotFoundException)
            jar = _require_jar(spark_version)
            loader.addURL(jvm.java.io.File(str(jar)).toURI().toURL())
            try:
                return jvm.java.lang.Class.forName(BRIDGE_CLASS, True, loader)
            except Exception as exc:
                raise JvmError(f"the driver JVM cannot load {BRIDGE_CLASS} from "
                               f"{jar}: {exc}; reinstall pipetrace with "
                               "`pip install .`") from exc

    @staticmethod
    def _answer(raw: str) -> dict[str, Any]:
        answer = json.loads(raw)
        if "error" in answer:
            raise JvmError(f"pipetrace's JVM listener reported: {answer['error']}")
        return answer

    def attach(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Register the listener on the session (idempotent); returns run id and spool."""
        return self._answer(self._bridge.attach(self._jss, json.dumps(settings)))

    def flush(self, run_id: str, timeout_ms: int) -> dict[str, Any]:
        """Wait for Spark's listener bus to drain, then seal the run's spool segment."""
        return self._answer(self._bridge.flush(self._jss, run_id, timeout_ms))

    def detach(self, timeout_ms: int) -> dict[str, Any]:
        """Unregister the session's listener, flush, and release the run's spool."""
        return self._answer(self._bridge.detach(self._jss, timeout_ms))

    def commit(self, run_id: str) -> dict[str, Any]:
        """Seal and commit the run's steps now with Spark's writer (writer='spark')."""
        return self._answer(self._bridge.commit(run_id))

    def recover_run(self, run_dir: str, table: str, format: str) -> dict[str, Any]:  # noqa: A002
        """Commit a dead run's sealed segments into ``table`` with Spark's writer."""
        return self._answer(self._bridge.recoverRun(self._jss, run_dir, table, format))

    def ml_step(self, training_qe: Any, output_qe: Any, payload: dict[str, Any]) -> dict[str, Any]:
        """Record a Spark ML fit/transform as a step (python/pipetrace/ml.py, ``Bridge.mlStep``).

        ``training_qe`` is the input DataFrame's JVM ``QueryExecution`` (its inputs and plan);
        ``output_qe`` a transform's result's, or None.
        """
        return self._answer(self._bridge.mlStep(self._jss, training_qe, output_qe,
                                                json.dumps(payload)))

    def commit_record(self, table: str, format: str, row_json: str,  # noqa: A002
                      version: int) -> dict[str, Any]:
        """Write a run's pipeline_runs row beside ``table`` with Spark's writer, exactly once."""
        return self._answer(self._bridge.commitRecord(self._jss, table, format, row_json,
                                                      version))

    def internal_session(self) -> Any:
        """A JVM session of pipetrace's own on this context, whose actions are never steps."""
        return self._bridge.internalSession(self._jss)

    def status(self, run_id: str) -> dict[str, Any]:
        """Counters of the run: captured, dropped, skipped steps; listener errors."""
        return self._answer(self._bridge.status(run_id))

    def tag_step(self, df: Any, step_json: str) -> bool:
        """Tag the logical node ``df``'s transformation created with the agent's step."""
        return bool(self._answer(self._bridge.tagStep(df._jdf, step_json)).get("tagged"))

    def rule(self, name: str, value: Any) -> Any:
        """Apply one of the rules the JVM shares with Python (``Rules.probe``) to ``value``.

        For tests/test_shared_rules.py, which checks both sides against one fixture file.
        """
        return self._answer(self._bridge.rule(name, json.dumps(value)))["value"]
