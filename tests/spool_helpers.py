"""Lay out spool run directories the way the JVM listener writes them, for tests.

Steps come from the golden lines in ``tests/fixtures/steps/*.jsonl`` (one realistic step per
file), re-stamped with the run id, seq and a unique event id.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "steps"

# Holds an exclusive POSIX lock in a *separate* process: fcntl locks are per process, so the
# test process could never see a lock it holds itself.
_HOLD_LOCK = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
    "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
)


def golden_steps() -> list[dict[str, Any]]:
    """The golden steps, in file order (count, collect, failed show, parquet write)."""
    steps = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        steps.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return steps


def make_steps(run_id: str, count: int, *, first_seq: int = 1) -> list[dict[str, Any]]:
    """``count`` steps for ``run_id`` cycling through the golden steps, seq from ``first_seq``."""
    golden = golden_steps()
    steps = []
    for offset in range(count):
        seq = first_seq + offset
        step = dict(golden[offset % len(golden)])
        step.update(run_id=run_id, seq=seq,
                    event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run_id}/{seq}")))
        steps.append(step)
    return steps


def lines(steps: list[dict[str, Any]]) -> str:
    """Steps as spool JSONL text (every line newline-terminated)."""
    return "".join(json.dumps(step) + "\n" for step in steps)


def write_manifest(run_dir: Path, run_id: str, table: str | None, **extra: Any) -> None:
    """Write ``run.json`` like the JVM does."""
    manifest = {
        "run_id": run_id,
        "table": table,
        "created_at": "2026-11-25T03:35:00.000000Z",
        "app_id": "local-1795922100123",
        "pid": 4242,
        "host": "testhost",
        "pipetrace_version": "0.1.0",
        "schema_version": 1,
    }
    manifest.update(extra)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(manifest))


def make_run(
    spool: Path,
    run_id: str,
    *,
    table: str | None,
    segments: list[list[dict[str, Any]] | str],
    open_segment: list[dict[str, Any]] | str | None = None,
    torn_tail: str = "",
    writer_lock: bool = True,
    first_segment: int = 1,
) -> Path:
    """Create ``<spool>/<run_id>`` with a manifest, sealed segments and an optional .open one.

    A segment is a list of steps or raw text (to write corrupt content). ``torn_tail`` is
    appended, without a newline, to the .open segment. ``writer_lock`` creates an unlocked
    ``writer.lock`` (a finished writer); hold it with :func:`held_writer_lock`.
    """
    run_dir = spool / run_id
    write_manifest(run_dir, run_id, table)
    if writer_lock:
        (run_dir / "writer.lock").touch()
    number = first_segment
    for content in segments:
        text = content if isinstance(content, str) else lines(content)
        (run_dir / f"seg-{number:06d}.jsonl").write_text(text)
        number += 1
    if open_segment is not None:
        text = open_segment if isinstance(open_segment, str) else lines(open_segment)
        (run_dir / f"seg-{number:06d}.jsonl.open").write_text(text + torn_tail)
    return run_dir


@contextlib.contextmanager
def held_writer_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``<run_dir>/writer.lock`` from a child process, like a live Spark driver JVM."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run_dir / "writer.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        assert child.stdout.readline().strip() == "locked"
        yield
    finally:
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()
