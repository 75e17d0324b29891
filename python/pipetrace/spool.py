"""The read side of the spool: the write-ahead log the JVM listener appends steps to.

Layout (written by the JVM shim, one directory per run)::

    <spool>/<run_id>/run.json              manifest
    <spool>/<run_id>/writer.lock           POSIX-locked by the live JVM while it may append
    <spool>/<run_id>/seg-000001.jsonl      sealed segments, immutable, increasing numbers
    <spool>/<run_id>/seg-000002.jsonl.open the segment being appended (at most one)

Numbers increase but need not be consecutive: the JVM numbers a segment
``max(previous + 1, now in ms)`` so a reused run id never repeats a committed number.
    <spool>/<run_id>/commit.lock           committers of the run serialize on it
    <spool>/<run_id>/quarantine/           segments that could not be read, with a .reason
    <spool>/<run_id>/last_error.json       why committing the run last failed, and how often
                                           (removed by the next successful commit)

POSIX (fcntl) locks belong to a process: a lock held by this process is invisible to its own
checks, so ``writer_alive`` only detects writers in *other* processes (the JVM always is one).

Example::

    >>> from pathlib import Path
    >>> [run.name for run in list_runs(Path("/nonexistent"))]
    []
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pipetrace.errors import SpoolError
from pipetrace.rules import SEGMENT

__all__ = [
    "Manifest",
    "Segment",
    "WriterState",
    "clear_error",
    "commit_lock",
    "list_runs",
    "open_segments",
    "pending_steps",
    "quarantine",
    "read_error",
    "read_manifest",
    "read_segment",
    "record_error",
    "recover_open_segments",
    "remove_run_if_done",
    "sealed_segments",
    "segment_name",
    "segment_number",
    "writer_alive",
    "writer_state",
]

MANIFEST = "run.json"
WRITER_LOCK = "writer.lock"
COMMIT_LOCK = "commit.lock"
LAST_ERROR = "last_error.json"
QUARANTINE = "quarantine"
# The run's record (pipetrace.run_record): the directory stays until its row is committed.
RECORD_FILES = ("record.json", "record.py.json", "record.end.json")

# A segment number is a long on the JVM side (and the Delta txn version): larger is not ours.
_MAX_NUMBER = (1 << 63) - 1

WriterState = Literal["alive", "gone", "absent"]


@dataclass(frozen=True)
class Manifest:
    """A run's ``run.json``: who wrote the run, and which table it is meant for."""

    run_id: str
    table: str | None
    created_at: str | None = None
    app_id: str | None = None
    pid: int | None = None
    host: str | None = None
    pipetrace_version: str | None = None
    schema_version: int | None = None
    key_id: str | None = None  # id of the key the run's rows are hashed with (keys.key_id)


@dataclass(frozen=True)
class Segment:
    """One segment file of a run; ``number`` orders segments and is the Delta txn version."""

    path: Path
    number: int

    @property
    def is_open(self) -> bool:
        """True for the segment the writer may still be appending to (``.open``)."""
        return self.path.name.endswith(".open")

    @property
    def sealed_name(self) -> str:
        """File name of the segment once sealed, e.g. ``seg-000007.jsonl``."""
        return segment_name(self.number)


def segment_number(name: str, *, is_open: bool = False) -> int | None:
    """The number of segment file ``name`` (sealed, or ``.open`` when ``is_open``), else None.

    Example::

        >>> segment_number("seg-000007.jsonl"), segment_number("seg-7.jsonl")
        (7, None)
    """
    match = SEGMENT.fullmatch(name)
    if match is None or bool(match.group(2)) != is_open:
        return None
    number = int(match.group(1))
    return number if number <= _MAX_NUMBER else None


def segment_name(number: int) -> str:
    """File name of sealed segment ``number`` (the JVM's ``Rules.segmentName``).

    Example::

        >>> segment_name(7), segment_name(1732000000000)
        ('seg-000007.jsonl', 'seg-1732000000000.jsonl')
    """
    return f"seg-{number:06d}.jsonl"


def list_runs(spool: Path) -> list[Path]:
    """Run directories in the spool, sorted by run id (empty when the spool does not exist).

    Example::

        >>> list_runs(Path("/nonexistent/spool"))
        []
    """
    if not spool.is_dir():
        return []
    return sorted(p for p in spool.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_manifest(run_dir: Path) -> Manifest:
    """Read ``run.json``; raise :class:`SpoolError` when it is missing or malformed.

    Example::

        >>> read_manifest(Path("spool/20261125-033511-a1b2c3")).table  # doctest: +SKIP
        '/home/me/.pipetrace/pipeline_steps'
    """
    path = run_dir / MANIFEST
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpoolError(f"run {run_dir.name}: no {MANIFEST} in {run_dir}; if no Spark process "
                         "is writing it, delete the directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpoolError(f"run {run_dir.name}: unreadable {path} ({exc}); fix or delete "
                         "the run directory") from None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        raise SpoolError(f"run {run_dir.name}: {path} has no run_id; fix or delete the run directory")
    table = data.get("table")
    version = data.get("schema_version")
    pid = data.get("pid")
    return Manifest(
        run_id=data["run_id"],
        table=table if isinstance(table, str) and table else None,
        created_at=_opt_str(data.get("created_at")),
        app_id=_opt_str(data.get("app_id")),
        pid=pid if isinstance(pid, int) else None,
        host=_opt_str(data.get("host")),
        pipetrace_version=_opt_str(data.get("pipetrace_version")),
        schema_version=version if isinstance(version, int) else None,
        key_id=_opt_str(data.get("key_id")),
    )


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def writer_state(run_dir: Path) -> WriterState:
    """``alive`` if another process holds ``writer.lock``, ``gone`` if it is free, ``absent``.

    Example::

        >>> writer_state(Path("/nonexistent/run"))
        'absent'
    """
    try:
        fd = os.open(run_dir / WRITER_LOCK, os.O_RDWR)
    except FileNotFoundError:
        return "absent"
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return "alive"
        raise SpoolError(f"cannot check {run_dir / WRITER_LOCK}: {exc}") from exc
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return "gone"
    finally:
        os.close(fd)


def writer_alive(run_dir: Path) -> bool:
    """True while the run's writer (the Spark driver JVM) may still append to it.

    Example::

        >>> writer_alive(Path("/nonexistent/run"))
        False
    """
    return writer_state(run_dir) == "alive"


def _segments(run_dir: Path, *, want_open: bool) -> list[Segment]:
    if not run_dir.is_dir():
        return []
    found = []
    for path in run_dir.iterdir():
        number = segment_number(path.name, is_open=want_open)
        if number is not None and path.is_file():
            found.append(Segment(path=path, number=number))
    return sorted(found, key=lambda s: s.number)


def sealed_segments(run_dir: Path) -> list[Segment]:
    """The run's sealed (immutable) segments, in ascending order.

    Example::

        >>> sealed_segments(Path("/nonexistent/run"))
        []
    """
    return _segments(run_dir, want_open=False)


def open_segments(run_dir: Path) -> list[Segment]:
    """The run's ``.open`` segments (at most one while the writer follows the layout).

    Example::

        >>> open_segments(Path("/nonexistent/run"))
        []
    """
    return _segments(run_dir, want_open=True)


def recover_open_segments(run_dir: Path) -> list[Segment]:
    """Seal the ``.open`` segments of a run whose writer is gone; return the sealed segments.

    The torn tail (bytes after the last newline) is dropped, then the file is renamed to its
    sealed name. Does nothing while the writer is alive.

    Example::

        >>> recover_open_segments(Path("/nonexistent/run"))
        []
    """
    if writer_alive(run_dir):
        return []
    recovered = []
    for seg in open_segments(run_dir):
        target = run_dir / seg.sealed_name
        if target.exists():
            # Never overwrite a sealed segment: keep both for a human to compare.
            quarantine(seg, f"{seg.path.name} found next to an existing {seg.sealed_name}")
            continue
        data = seg.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            os.truncate(seg.path, keep)
        os.replace(seg.path, target)
        recovered.append(Segment(path=target, number=seg.number))
    return recovered


def read_segment(path: Path) -> list[dict[str, Any]]:
    """Parse a segment into step objects; a final line without a newline (torn) is ignored.

    Raises :class:`SpoolError` naming the line when a line is not a JSON object.

    Example::

        >>> read_segment(Path("spool/run/seg-000001.jsonl"))[0]["seq"]  # doctest: +SKIP
        1
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpoolError(f"cannot read {path}: {exc}") from exc
    complete = data[: data.rfind(b"\n") + 1]
    rows = []
    for number, line in enumerate(complete.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpoolError(f"{path.name} line {number}: not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise SpoolError(f"{path.name} line {number}: expected a JSON object")
        rows.append(obj)
    return rows


def quarantine(segment: Segment, reason: str) -> Path:
    """Move a segment to the run's ``quarantine/`` with a ``.reason`` file; return its new path.

    Example::

        >>> quarantine(seg, "line 3: not valid JSON")  # doctest: +SKIP
        PosixPath('spool/run/quarantine/seg-000003.jsonl')
    """
    folder = segment.path.parent / QUARANTINE
    folder.mkdir(exist_ok=True)
    target = folder / segment.path.name
    (folder / f"{segment.path.name}.reason").write_text(reason + "\n", encoding="utf-8")
    os.replace(segment.path, target)
    return target


@contextlib.contextmanager
def commit_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's ``commit.lock`` (blocking) so one committer at a time commits the run.

    ``flock`` rather than ``lockf``: its locks belong to the open file, so two threads of one
    process (a handle's background commit and its ``flush()``) exclude each other too.

    Example::

        >>> with commit_lock(run_dir):  # doctest: +SKIP
        ...     pass
    """
    fd = os.open(run_dir / COMMIT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def remove_run_if_done(run_dir: Path) -> bool:
    """Remove a run directory with no segments left whose writer is gone; True if removed.

    A run with quarantined segments is kept so they can be inspected; a run without a
    ``writer.lock`` is kept too (its writer may not have started yet).

    Example::

        >>> remove_run_if_done(Path("/nonexistent/run"))
        False
    """
    if not run_dir.is_dir() or writer_state(run_dir) != "gone":
        return False
    if sealed_segments(run_dir) or open_segments(run_dir):
        return False
    if any((run_dir / name).exists() for name in RECORD_FILES):
        return False  # the run's own row (pipeline_runs) is not committed yet
    held = run_dir / QUARANTINE
    if held.is_dir() and any(held.iterdir()):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


def record_error(run_dir: Path, message: str) -> int:
    """Remember in ``last_error.json`` that committing the run failed; return the attempt count.

    Kept per run in the spool so that ``pipetrace status`` in any process can show it.

    Example::

        >>> record_error(run_dir, "table is on a read-only file system")  # doctest: +SKIP
        3
    """
    if not run_dir.is_dir():
        return 0
    previous = read_error(run_dir) or {}
    attempts = int(previous.get("attempts", 0)) + 1
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    data = {"error": message, "at": now, "attempts": attempts,
            "first_at": previous.get("first_at", now)}
    tmp = run_dir / f"{LAST_ERROR}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, run_dir / LAST_ERROR)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full or read-only spool: the warning still says it
    return attempts


def read_error(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``last_error.json`` (error, at, attempts, first_at), or None.

    Example::

        >>> read_error(Path("/nonexistent/run")) is None
        True
    """
    try:
        data = json.loads((run_dir / LAST_ERROR).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def clear_error(run_dir: Path) -> None:
    """Forget the run's last commit error (after a successful commit).

    Example::

        >>> clear_error(Path("/nonexistent/run"))
    """
    with contextlib.suppress(OSError):
        (run_dir / LAST_ERROR).unlink()


def pending_steps(segment: Segment) -> int:
    """Complete (newline-terminated, non-blank) lines of a segment: the steps it holds.

    Example::

        >>> pending_steps(Segment(Path("/nonexistent/seg-000001.jsonl"), 1))
        0
    """
    try:
        data = segment.path.read_bytes()
    except OSError:
        return 0
    return sum(1 for line in data[: data.rfind(b"\n") + 1].split(b"\n")[:-1] if line.strip())
