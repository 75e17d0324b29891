"""A run's own record (its row in ``pipeline_runs``), kept in the run's spool directory.

Three files, each written whole (temp file, then rename)::

    <spool>/<run_id>/record.json      the JVM's part, redacted (spool/RunRecord.java): started
                                      and ended, versions, settings, step counts, and the
                                      Python side's argv / script / cells after redaction
    <spool>/<run_id>/record.py.json   the Python side's facts (pipetrace run, attach): raw;
                                      never committed as such (only the JVM redacts text)
    <spool>/<run_id>/record.end.json  the Python side's end: ended_at, status, exit_code

:func:`assemble` merges them into one row once the run is over (its driver released the spool
and its Python side wrote its end or is gone); a run whose end was never seen still gets a
row, with a null ``ended_at``, status ``UNKNOWN`` and the reason. The row is committed once,
with a Delta transaction id of its own (:mod:`pipetrace.runs_table`).

Example::

    >>> from pathlib import Path
    >>> assemble(Path("/nonexistent/run")) is None
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pipetrace import rules
from pipetrace import spool as sp
from pipetrace.schema import SCHEMA_VERSION

__all__ = ["END_FILE", "FILES", "JVM_FILE", "PY_FILE", "Record", "assemble", "commit_when_over",
           "has_record", "packages", "ready", "record_table", "remove", "write_end",
           "write_start"]

FILES = sp.RECORD_FILES
JVM_FILE, PY_FILE, END_FILE = FILES

# Key Python packages whose versions change results; only those installed are recorded.
_PACKAGES = ("pyspark", "pipetrace", "deltalake", "delta-spark", "pandas", "numpy", "pyarrow",
             "scikit-learn", "mlflow")
# Python facts that hold no text a user wrote: committed even when the JVM never redacted.
_SAFE_PY = ("mode", "started_at", "script_path", "script_sha256", "python_version", "packages")
_TEXT_PY = ("argv", "cells")
_END = ("ended_at", "status", "exit_code", "end_reason")
_NEVER_ENDED = ("the run's end was never recorded (its driver or process was killed, or the "
                "machine stopped); this row was written by recovery")

Record = tuple[dict[str, Any], int]  # the row, and its Delta txn version


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def packages() -> dict[str, str]:
    """Versions of the key Python packages installed here (``importlib.metadata``).

    Example::

        >>> "pyarrow" in packages()
        True
    """
    found = {}
    for name in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def write_start(run_dir: Path, *, mode: str, argv: list[str] | None,
                script: str | os.PathLike[str] | None = None,
                cells: list[dict[str, Any]] | None = None,
                started_at: datetime | None = None, table: str | None = None) -> None:
    """Write the Python side's facts of a run that starts (or, for attach, that detaches:
    ``cells`` then holds the notebook's history). ``script`` is hashed now; the JVM checks
    the hash before it records the text. ``table`` (the steps table the run is for) lets
    recovery commit the record of a run whose driver never started.

    Example::

        >>> write_start(run_dir, mode="run", argv=["--day", "1"], script="etl.py")  # doctest: +SKIP
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = _read(run_dir / PY_FILE)
    stamp = started_at or datetime.now(timezone.utc)
    facts: dict[str, Any] = {
        "mode": mode,
        "started_at": previous.get("started_at") or stamp.isoformat().replace("+00:00", "Z"),
        "record_version": previous.get("record_version") or int(stamp.timestamp() * 1000),
        "argv": list(argv) if argv is not None else None,
        "python_version": sys.version.split()[0],
        "packages": packages(),
        "owner_pid": os.getpid(),
        "owner_host": socket.gethostname(),
        "table": table or previous.get("table"),
    }
    if script is not None:
        path = Path(script).resolve()
        facts["script_path"] = str(path)
        facts["script_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    else:  # a later call (attach's cells at detach) keeps the script hashed at the start
        facts.update({k: previous[k] for k in ("script_path", "script_sha256") if k in previous})
    if cells is not None:
        facts["cells"] = cells
    _write(run_dir / PY_FILE, facts)


def write_end(run_dir: Path, *, status: str, exit_code: int | None = None,
              end_reason: str | None = None) -> None:
    """Write the Python side's end of the run (now): SUCCEEDED, FAILED or KILLED.

    Example::

        >>> write_end(run_dir, status="FAILED", exit_code=1)  # doctest: +SKIP
    """
    if run_dir.is_dir():
        _write(run_dir / END_FILE, {"ended_at": _now(), "status": status, "exit_code": exit_code,
                                    "end_reason": end_reason})


def has_record(run_dir: Path) -> bool:
    """Whether the run still has a record waiting to be committed.

    Example::

        >>> has_record(Path("/nonexistent/run"))
        False
    """
    return any((run_dir / name).exists() for name in FILES)


def _owner_alive(py: dict[str, Any]) -> bool:
    pid = py.get("owner_pid")
    if not isinstance(pid, int) or py.get("owner_host") != socket.gethostname():
        return False  # another machine's process cannot be checked: its driver is gone too
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def record_table(run_dir: Path) -> str | None:
    """The steps table the Python side said the run is for (None when it did not say).

    Example::

        >>> record_table(Path("/nonexistent/run")) is None
        True
    """
    table = _read(run_dir / PY_FILE).get("table")
    return table if isinstance(table, str) else None


def ready(run_dir: Path) -> bool:
    """Whether the run is over, so its record can be committed: its driver let go of the spool
    (or never took it) and its Python side wrote its end or is gone.

    Example::

        >>> ready(Path("/nonexistent/run"))
        False
    """
    if not has_record(run_dir) or sp.writer_alive(run_dir):
        return False
    py = _read(run_dir / PY_FILE)
    return not py or (run_dir / END_FILE).exists() or not _owner_alive(py)


def assemble(run_dir: Path) -> Record | None:
    """The run's row (pipeline_runs columns) and its txn version, or None without a record.

    Example::

        >>> assemble(Path("/nonexistent/run")) is None
        True
    """
    jvm, py, end = (_read(run_dir / name) for name in FILES)
    if not (jvm or py or end):
        return None
    warnings = list(jvm.get("capture_warnings") or [])
    row: dict[str, Any] = {k: py[k] for k in _SAFE_PY if k in py}
    row.update({k: v for k, v in jvm.items() if v is not None})
    for key in ("mode", "started_at"):  # the session as the Python side saw it begin
        if py.get(key):
            row[key] = py[key]
    if py and not jvm:
        dropped = [k for k in _TEXT_PY if py.get(k) is not None]
        if dropped:
            warnings.append(f"{', '.join(dropped)}: not recorded, the Spark driver never "
                            "redacted them (it did not start or died first)")
    row.update({k: end[k] for k in _END if k in end})
    if not end:
        _without_python_end(row, jvm, py)
    row["run_id"] = row.get("run_id") or run_dir.name
    row["capture_warnings"] = warnings or None
    version = jvm.get("record_version") or py.get("record_version") or 1
    for key in ("record_version", "owner_pid", "owner_host", "table"):
        row.pop(key, None)
    row.setdefault("schema_version", SCHEMA_VERSION)
    return row, int(version)


def _without_python_end(row: dict[str, Any], jvm: dict[str, Any], py: dict[str, Any]) -> None:
    """Status of a run whose Python side wrote no end: a conf run's end is its driver's."""
    if jvm.get("ended_at") and not py:
        row.update(rules.CONF_RUN_END)  # RecordSink.jvmOnlyRow applies the same rule
        return
    if jvm.get("ended_at"):
        row["status"] = "UNKNOWN"
        row["end_reason"] = ("the driver closed the run but its Python side recorded no end "
                             "(its process was killed)")
        return
    row["ended_at"] = None
    row["status"] = "UNKNOWN"
    row["end_reason"] = _NEVER_ENDED


def commit_when_over(run_dir: Path, write: Callable[[dict[str, Any], int], None]) -> bool:
    """If the run is over, ``write(row, version)`` its row and remove the record files; True
    then. Whatever ``write`` raises propagates, and the record stays in the spool.

    Example::

        >>> commit_when_over(Path("/nonexistent/run"), lambda row, version: None)
        False
    """
    if not ready(run_dir):
        return False
    record = assemble(run_dir)
    if record is None:
        return False
    write(*record)
    remove(run_dir)
    return True


def remove(run_dir: Path) -> None:
    """Delete the run's record files (after its row was committed).

    Example::

        >>> remove(Path("/nonexistent/run"))
    """
    for name in FILES:
        (run_dir / name).unlink(missing_ok=True)
