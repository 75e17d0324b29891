"""``pipetrace run``: run an unmodified PySpark script with capture on, then commit its steps.

The script runs as ``sys.executable script args`` in the same working directory and
environment, plus ``PYSPARK_SUBMIT_ARGS`` that put the listener jar on the driver classpath
and register the listener. The driver JVM spools the steps; they are committed to the table
every second while the script runs and once more after it exits, whatever its exit code.

Example::

    >>> result = run_script("etl.py", ["--day", "2026-11-25"])  # doctest: +SKIP
    >>> result.exit_code, result.steps  # doctest: +SKIP
    (0, 7)
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from pipetrace import run_record
from pipetrace import spool as sp
from pipetrace._jvm import LISTENER_CLASS, STREAM_LISTENER_CLASS, check_jar, jar_path
from pipetrace.errors import ConfigError, JarNotFoundError, JvmError, PipetraceError
from pipetrace.guard import check_location
from pipetrace.ingest import IngestResult, RunCommitter, commit_record_only, ingest
from pipetrace.locations import home, resolve_spool, resolve_table
from pipetrace.resume import resume_point

__all__ = ["RunResult", "new_run_id", "run_script", "submit_args"]

# The runner is its own process (the script and its driver run in a child), so a short period
# costs the job nothing but a directory listing when nothing was sealed.
_COMMIT_EVERY_S = 1.0
_DRIVER_EXIT_S = 60.0
_LISTENERS = "spark.sql.queryExecutionListeners"
_STREAM_LISTENERS = "spark.sql.streaming.streamingQueryListeners"
_CLASSPATH = "spark.driver.extraClassPath"

log = logging.getLogger("pipetrace")


@dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`run_script`."""

    exit_code: int
    run_id: str
    steps: int
    failed_steps: int
    table: str
    ingest_reports: list[IngestResult] = field(default_factory=list)
    commit_error: str | None = None  # the steps stayed in the spool (see `pipetrace status`)
    dropped: int = 0                 # steps the driver could not spool: lost
    drop_reason: str | None = None   # why; also set when the driver could not confirm its count
    log: Path | None = None          # Spark's log lines of the run (None: they went to stderr)
    failed_seqs: list[int] = field(default_factory=list)  # seq of each failed step


# Set for the script's process by `pipetrace run` (read by pipetrace.launch).
MEASURE_ENV = "PIPETRACE_MEASURE_STEPS"
LOG_ENV = "PIPETRACE_LOG_FILE"
_LOG4J = "log4j2-run.properties"


def log_file(run_id: str) -> Path:
    """Where ``pipetrace run`` writes Spark's log lines for the run: ``<home>/logs/<run_id>.log``.

    Example::

        >>> log_file("r1").name
        'r1.log'
    """
    return home() / "logs" / f"{run_id}.log"


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id, ``YYYYmmdd-HHMMSS-<6 hex>`` in UTC.

    Example::

        >>> new_run_id(datetime(2026, 11, 25, 3, 35, 11, tzinfo=timezone.utc))[:16]
        '20261125-033511-'
    """
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _merge_conf(tokens: list[str], key: str, value: str, sep: str) -> bool:
    """Append ``value`` to an existing ``--conf key=...`` in ``tokens``; True if found."""
    for i, token in enumerate(tokens[:-1]):
        if token == "--conf" and tokens[i + 1].startswith(f"{key}="):
            current = tokens[i + 1].split("=", 1)[1]
            parts = [p for p in current.split(sep) if p]
            if value not in parts:
                parts.append(value)
            tokens[i + 1] = f"{key}={sep.join(parts)}"
            return True
    return False


def submit_args(existing: str | None, *, jar: Path, run_id: str, spool: Path, table: str,
                resume: tuple[int, str | None] = (0, None), log: Path | None = None) -> str:
    """``PYSPARK_SUBMIT_ARGS`` that turn capture on, keeping the user's own arguments.

    A user's driver classpath or listeners are extended, not replaced; exactly one trailing
    ``pyspark-shell`` is kept. ``log``: the driver logs to that file (pipetrace's log4j2
    configuration) and shows no progress bar, unless the user configured either.

    Example::

        >>> submit_args("--driver-memory 2g pyspark-shell", jar=Path("/p.jar"), run_id="r",
        ...             spool=Path("/s"), table="/t").split()[:4]
        ['--driver-memory', '2g', '--driver-class-path', '/p.jar']
    """
    try:
        tokens = [t for t in shlex.split(existing or "") if t != "pyspark-shell"]
    except ValueError as exc:
        raise ConfigError(f"cannot parse PYSPARK_SUBMIT_ARGS ({exc}): fix its quoting") from exc
    ours: list[str] = []
    for i, token in enumerate(tokens):
        if token == "--driver-class-path" and i + 1 < len(tokens):
            tokens[i + 1] = os.pathsep.join([tokens[i + 1], str(jar)])
            break
        if token.startswith("--driver-class-path="):
            tokens[i] = os.pathsep.join([token, str(jar)])
            break
    else:
        if not _merge_conf(tokens, _CLASSPATH, str(jar), os.pathsep):
            ours += ["--driver-class-path", str(jar)]
    if not _merge_conf(tokens, _LISTENERS, LISTENER_CLASS, ","):
        ours += ["--conf", f"{_LISTENERS}={LISTENER_CLASS}"]
    if not _merge_conf(tokens, _STREAM_LISTENERS, STREAM_LISTENER_CLASS, ","):
        ours += ["--conf", f"{_STREAM_LISTENERS}={STREAM_LISTENER_CLASS}"]
    if log is not None:
        ours += _quiet(tokens, log)
    # Ours come last so that they win over any spark.pipetrace.* the user had set.
    ours += [
        "--conf", f"spark.pipetrace.run_id={run_id}",
        "--conf", f"spark.pipetrace.spool={spool}",
        "--conf", f"spark.pipetrace.table={table}",
    ]
    if resume[0] > 0:  # a reused run id continues after its last recorded step
        ours += ["--conf", f"spark.pipetrace.resume_seq={resume[0]}"]
        if resume[1]:
            ours += ["--conf", f"spark.pipetrace.resume_hash={resume[1]}"]
    return shlex.join([*tokens, *ours, "pyspark-shell"])


def _quiet(tokens: list[str], log: Path) -> list[str]:
    """Arguments that send the driver's log lines to ``log``; none the user already decides."""
    text = " ".join(tokens)
    if "log4j" in text:  # the user's own logging configuration stands
        return []
    config = resources.files("pipetrace").joinpath("resources").joinpath(_LOG4J)
    options = f"-Dlog4j2.configurationFile={config} -Dpipetrace.log.file={log}"
    ours: list[str] = []
    for i, token in enumerate(tokens[:-1]):
        if token == "--driver-java-options":
            tokens[i + 1] = f"{tokens[i + 1]} {options}"
            break
    else:
        if not _merge_conf(tokens, "spark.driver.extraJavaOptions", options, " "):
            ours += ["--driver-java-options", options]
    if "spark.ui.showConsoleProgress" not in text:
        ours += ["--conf", "spark.ui.showConsoleProgress=false"]
    return ours


def _commit_while_running(stop: threading.Event, spool: Path, table: str, run_id: str,
                          reports: list[IngestResult]) -> None:
    warned = False
    committer = RunCommitter(spool=spool, table=table, run_id=run_id)
    while not stop.wait(_COMMIT_EVERY_S):
        if not committer.has_sealed():
            continue
        try:
            reports.append(committer.commit())
        except Exception as exc:  # noqa: BLE001 - the script goes on; steps stay in the spool
            if not warned:  # once per run, not once per batch
                log.warning("pipetrace: cannot commit run %s to %s yet (%s); its steps stay in "
                            "the spool, see `pipetrace status`", run_id, table, exc)
                warned = True


def _wait_for_driver(run_dir: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sp.writer_alive(run_dir):
                return
        except (PipetraceError, OSError):
            return  # no readable spool: _driver_account says what that means
        time.sleep(0.05)  # polling a file lock the driver releases when its JVM exits
    log.warning("pipetrace: the driver of %s still holds its spool after %.0f s; its last steps "
                "are committed by the next `pipetrace ingest`", run_dir.name, timeout)


def _driver_account(run_dir: Path) -> tuple[int, str | None]:
    """The dropped steps the driver reported when its run closed (``closed.json``)."""
    started = run_dir.exists() and not (
        run_dir.is_dir() and not (run_dir / sp.WRITER_LOCK).exists()
        and not (run_dir / sp.MANIFEST).exists())  # only the run's record, made by the runner
    if not started:
        return 0, None  # the script never started Spark: nothing to capture, nothing lost
    try:
        account = json.loads((run_dir / "closed.json").read_text(encoding="utf-8"))
        return int(account.get("dropped") or 0), account.get("drop_reason")
    except (OSError, ValueError, AttributeError) as exc:
        return 0, (f"the Spark driver did not confirm its capture ({exc}): steps may be "
                   "missing (a driver killed, or a spool that stopped taking writes)")


def _write_end(run_dir: Path, code: int) -> None:
    """The run's end in its record: SUCCEEDED on 0, KILLED by a signal, FAILED otherwise."""
    if code < 0:
        run_record.write_end(run_dir, status="KILLED", exit_code=128 - code,
                             end_reason=f"the script was ended by signal {-code}")
    else:
        run_record.write_end(run_dir, status="SUCCEEDED" if code == 0 else "FAILED",
                             exit_code=code)


def _require_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return
    if shutil.which("java"):
        return
    where = f"JAVA_HOME={java_home} has no bin/java, and " if java_home else ""
    raise JvmError(
        f"Spark needs Java, but {where}no `java` is on PATH. Install a Java 17 or 21 runtime "
        "(e.g. `apt-get install openjdk-17-jre-headless` or `brew install openjdk@17`) and put "
        "it on PATH or set JAVA_HOME; nothing was run")


def _importable(env: dict[str, str]) -> None:
    """Let the child import this pipetrace (e.g. a source checkout on the parent's sys.path)."""
    root = str(Path(__file__).resolve().parent.parent)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, root])


def _installed_spark_version() -> str | None:
    try:
        import pyspark
    except ImportError:
        return None
    return str(pyspark.__version__)


def run_script(
    script: str | os.PathLike[str],
    args: Sequence[str],
    *,
    table: str | None = None,
    run_id: str | None = None,
    measure_steps: bool = False,
    spark_logs: bool = False,
) -> RunResult:
    """Run ``script`` with ``args`` under capture, commit its steps, return the outcome.

    The script runs with pipetrace's wrappers installed (``pipetrace.hooks``: the agent's line
    on every action); ``measure_steps`` also counts each filter's rows exactly (observed
    metrics). Spark's log lines go to :func:`log_file` (``RunResult.log``) unless
    ``spark_logs``. The script's exit code is returned, never raised; a failed commit does not change it: the
    steps stay in the spool and ``commit_error`` says why (``pipetrace status`` shows it too).

    Example::

        >>> r = run_script("etl.py", [], table="/tmp/pipeline_steps")  # doctest: +SKIP
        >>> print(r.run_id, r.steps, r.exit_code)  # doctest: +SKIP
        20261125-033511-a1b2c3 7 0
    """
    jar = jar_path()
    if not jar.is_file():
        raise JarNotFoundError(f"the pipetrace listener jar is missing ({jar}): reinstall with "
                               "pip install . (the build compiles it with javac; needs a JDK 17+)")
    if not Path(script).is_file():
        raise ConfigError(f"no such script: {script}")
    _require_java()
    spark_version = _installed_spark_version()
    if spark_version:
        check_jar(jar, spark_version)
    table_uri = resolve_table(table)
    check_location(table_uri)
    spool = resolve_spool(None)
    rid = run_id or new_run_id()
    if "/" in rid or rid.startswith(".") or not rid.strip():
        raise ConfigError(f"invalid run id {rid!r}: use letters, digits, '-' and '_'")
    resume = resume_point(rid, table=table_uri, spool=spool) if run_id else (0, None)
    child_env = dict(os.environ)
    log = None if spark_logs else log_file(rid)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        child_env[LOG_ENV] = str(log)
    child_env["PYSPARK_SUBMIT_ARGS"] = submit_args(
        child_env.get("PYSPARK_SUBMIT_ARGS"), jar=jar, run_id=rid, spool=spool, table=table_uri,
        resume=resume, log=log)

    # The run's own record (pipeline_runs) starts now: `pipetrace run`'s start is the session's.
    run_record.write_start(spool / rid, mode="run", argv=list(args), script=script,
                           table=table_uri)
    reports: list[IngestResult] = []
    stop = threading.Event()
    committer = threading.Thread(target=_commit_while_running, name="pipetrace-commit",
                                 args=(stop, spool, table_uri, rid, reports), daemon=True)
    committer.start()
    if measure_steps:
        child_env[MEASURE_ENV] = "1"
    # pipetrace.launch runs the script as `python script args` would, with pipetrace's
    # wrappers installed (the agent's line on every action, pipetrace.hooks; Spark ML fits,
    # pipetrace.ml).
    _importable(child_env)
    child = subprocess.Popen([sys.executable, "-m", "pipetrace.launch", os.fspath(script), *args],
                             env=child_env)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        # The script got the same Ctrl-C; let it finish so its last steps are spooled.
        code = child.wait()
    finally:
        stop.set()
        committer.join()
    # The script's Python process exits before its driver JVM has finished: the JVM notices
    # the closed gateway, then drains Spark's listener bus and seals the last steps. The final
    # commit must wait for that (the JVM holds the run's writer lock until it is done), or the
    # steps of the last actions stay behind in the spool.
    _wait_for_driver(spool / rid, _DRIVER_EXIT_S)
    dropped, drop_reason = _driver_account(spool / rid)
    _write_end(spool / rid, code)
    commit_error = None
    try:
        reports.append(ingest(spool=spool, table=table_uri, run_ids=[rid]))
        # A script that never started Spark has no manifest, but it ran: its record.
        commit_record_only(spool / rid, table_uri)
    except (PipetraceError, OSError) as exc:
        commit_error = str(exc)  # the script's outcome stands; the steps wait in the spool
    return RunResult(
        exit_code=code if code >= 0 else 128 - code,
        run_id=rid,
        steps=sum(r.steps for r in reports),
        failed_steps=sum(r.failed_steps for r in reports),
        table=table_uri,
        ingest_reports=reports,
        commit_error=commit_error,
        dropped=dropped,
        drop_reason=drop_reason,
        log=log if log is not None and log.is_file() else None,
        failed_seqs=sorted(s for r in reports for s in r.failed_seqs),
    )
