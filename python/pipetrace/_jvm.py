"""The Py4J boundary: the only module that touches Spark's JVM from Python.

The contract with the JVM shim is tiny: JSON strings in, JSON strings out, through one
``io.pipetrace.Bridge`` object (in the spirit of mlflow's Spark autologging, without a Py4J
callback server and without classes placed in Spark's packages).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from pipetrace.errors import JarNotFoundError, JvmError, SparkConnectError, UnsupportedModeError

__all__ = ["BRIDGE_CLASS", "LISTENER_CLASS", "STREAM_LISTENER_CLASS", "JvmBridge", "check_jar",
           "is_blocked_jvm_error", "jar_path"]

LISTENER_CLASS = "io.pipetrace.PipetraceListener"
# Registered beside it: names the sink of each streaming query, so its batches name it too.
STREAM_LISTENER_CLASS = "io.pipetrace.StreamSinks"
BRIDGE_CLASS = "io.pipetrace.Bridge"
JAR_NAME = "pipetrace-shim.jar"
SUPPORTED_SPARK_MAJOR = 4


def jar_path() -> Path:
    """Path of the listener jar shipped inside the package (built by ``pip install``).

    Example::

        >>> jar_path().name
        'pipetrace-shim.jar'
    """
    return Path(__file__).resolve().parent / "jars" / JAR_NAME


def jar_spark_version(jar: Path) -> str | None:
    """The ``Spark-Version`` the jar was compiled against (its MANIFEST), or None if unknown.

    Example::

        >>> jar_spark_version(jar_path())  # doctest: +SKIP
        '4.3.0'
    """
    try:
        with zipfile.ZipFile(jar) as zf:
            manifest = zf.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    for line in manifest.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "spark-version" and value.strip():
            return value.strip()
    return None


def check_jar(jar: Path, spark_version: str) -> None:
    """Raise :class:`JvmError` when ``jar`` was built for another Spark major version.

    Loading such a jar would fail later, inside the driver, with a ``NoSuchMethodError`` on the
    listener thread; this says it up front instead. A jar without the information passes.

    Example::

        >>> check_jar(jar_path(), "4.3.0")  # doctest: +SKIP
    """
    built = jar_spark_version(jar)
    if built is None:
        return
    if built.split(".")[0] != str(spark_version).split(".")[0]:
        raise JvmError(
            f"{jar} was built for Spark {built}, but this is Spark {spark_version}: the "
            f"listener would not load. Reinstall pipetrace against this Spark "
            f"(pip install --force-reinstall pipetrace, with pyspark {spark_version} installed)")


def _require_jar() -> Path:
    jar = jar_path()
    if not jar.is_file():
        raise JarNotFoundError(
            f"the pipetrace listener jar is missing ({jar}); it is built when the package is "
            "installed: reinstall with `pip install .` (a JDK 17+ with javac is needed)")
    return jar


_CLUSTER_SETUP = (
    "Capture needs the cluster-level setup instead: a dedicated (single user) access-mode "
    "cluster with pipetrace's init script (`pipetrace databricks init-script`, or the bundle: "
    "`databricks bundle deploy`), which puts pipetrace-shim.jar on the driver classpath and "
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
    major = int(str(spark.version).split(".")[0])
    if major != SUPPORTED_SPARK_MAJOR:
        raise JvmError(f"pipetrace supports Spark {SUPPORTED_SPARK_MAJOR}.x; this session runs "
                       f"Spark {spark.version}. Install a Spark 4 runtime (pyspark>=4,<5).")


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
        if jar_path().is_file():  # before anything reaches the driver
            check_jar(jar_path(), str(spark.version))
        cls = _LOADED.get(id(gateway))
        if cls is None:
            cls = self._load_class(jvm)
            _LOADED[id(gateway)] = cls
        no_types = gateway.new_array(jvm.java.lang.Class, 0)
        no_args = gateway.new_array(jvm.java.lang.Object, 0)
        return cls.getDeclaredConstructor(no_types).newInstance(no_args)

    def _load_class(self, jvm: Any) -> Any:
        # The session's jar class loader takes new jars at runtime: no restart, and the class
        # is found from the driver classpath first when a cluster already ships the jar.
        loader = self._jss.sharedState().jarClassLoader()
        try:
            return jvm.java.lang.Class.forName(BRIDGE_CLASS, True, loader)
        except Exception:  # noqa: BLE001 - Py4JJavaError(ClassNotFoundException)
            loader.addURL(jvm.java.io.File(str(_require_jar())).toURI().toURL())
            try:
                return jvm.java.lang.Class.forName(BRIDGE_CLASS, True, loader)
            except Exception as exc:
                raise JvmError(f"the driver JVM cannot load {BRIDGE_CLASS} from "
                               f"{jar_path()}: {exc}; reinstall pipetrace with "
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

    def internal_session(self) -> Any:
        """A JVM session of pipetrace's own on this context, whose actions are never steps."""
        return self._bridge.internalSession(self._jss)

    def status(self, run_id: str) -> dict[str, Any]:
        """Counters of the run: captured, dropped, skipped steps; listener errors."""
        return self._answer(self._bridge.status(run_id))

    def rule(self, name: str, value: Any) -> Any:
        """Apply one of the rules the JVM shares with Python (``Rules.probe``) to ``value``.

        For tests/test_shared_rules.py, which checks both sides against one fixture file.
        """
        return self._answer(self._bridge.rule(name, json.dumps(value)))["value"]
