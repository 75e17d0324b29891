"""A failing sink never fails or hangs the user's action; the problem is visible (one warning,
a counter, `pipetrace status`), the steps stay in the spool, and nothing is lost once the
table is fixed. Bad input gets a clear error before anything is half-done."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pipetrace
from pipetrace import _jvm, runner
from pipetrace.errors import JvmError, TableError
from pipetrace.ingest import ensure_table, ingest
from pipetrace.recover import recover
from pipetrace.status import status
from tests.spool_helpers import held_writer_lock, make_run, make_steps
from tests.test_faults import env_for, table_rows


def _mount_tmpfs(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
                          capture_output=True)
    return done.returncode == 0


@contextlib.contextmanager
def broken_table(kind: str, tmp_path: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A table location that cannot be written, for real (the tests run as root, so chmod
    would not stop them: a file as parent, a read-only file system, a full file system),
    and how to repair it."""
    if kind == "parent-is-a-file":
        (tmp_path / "a_file").write_text("")
        yield str(tmp_path / "a_file" / "pipeline_steps"), (tmp_path / "a_file").unlink
        return
    mount = tmp_path / "mnt"
    options = "ro,size=1m" if kind == "read-only-fs" else "size=256k"
    if not _mount_tmpfs(mount, options):
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN) to simulate {kind}")
    try:
        if kind == "disk-full":
            ensure_table(str(mount / "pipeline_steps"))  # the disk fills up after creation
            with open(mount / "filler", "wb") as filler, contextlib.suppress(OSError):
                while True:  # until ENOSPC: the file system is really full
                    filler.write(b"\0" * 65536)
                    filler.flush()

            def repair() -> None:
                (mount / "filler").unlink()
        else:
            def repair() -> None:
                subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        yield str(mount / "pipeline_steps"), repair
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


EXPECTED_ERROR = {"parent-is-a-file": "Not a directory", "read-only-fs": "Read-only file system",
                  "disk-full": "no space left"}


@pytest.mark.parametrize("kind", ["parent-is-a-file", "read-only-fs", "disk-full"])
def test_unwritable_table_never_breaks_the_job_and_is_visible(
    spark: Any, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the protection, flush() raises TableError into the user's program and every
    background batch logs again."""
    spool = tmp_path / "spool"
    run_id = f"sink-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.WARNING, logger="pipetrace")
    with broken_table(kind, tmp_path) as (table, repair):
        trace = pipetrace.attach(spark, table=table, spool=str(spool), run_id=run_id,
                                 commit_interval=0.05)
        try:
            df = spark.range(40)
            assert df.count() == 40                      # the user's actions work
            assert len(df.filter("id < 5").collect()) == 5
            first = trace.flush(timeout=30)
            assert df.count() == 40
            second = trace.flush(timeout=30)
            for result in (first, second):
                assert result.error and result.committed == 0 and not result.timed_out
            assert trace.status()["commit_failures"] >= 2
            [run] = [r for r in status(spool=spool) if r.run_id == run_id]
            assert (run.writer, run.pending_steps) == ("alive", 3)
            assert run.failed_attempts >= 2 and run.last_error
            assert EXPECTED_ERROR[kind] in run.last_error
            shown = subprocess.run(
                [sys.executable, "-m", "pipetrace", "status", "--spool", str(spool),
                 "--format", "json"], env=env_for(tmp_path), capture_output=True, text=True,
                timeout=60)
            assert json.loads(shown.stdout)[0]["pending_steps"] == 3
        finally:
            assert trace.detach(timeout=30).error
        warnings = [r for r in caplog.records if "cannot commit run" in r.getMessage()]
        assert len(warnings) == 1, "one warning, not one per batch"
        # Nothing was lost: once the table is repaired, recovery delivers every step.
        repair()
        assert recover(spool=spool, table=table).steps == 3
        assert sorted(r["seq"] for r in table_rows(Path(table))) == [1, 2, 3]
        assert not (spool / run_id).exists()


def test_table_deleted_mid_run(spark: Any, tmp_path: Path) -> None:
    table = tmp_path / "steps"
    with pipetrace.attach(spark, table=str(table), spool=str(tmp_path / "spool"),
                          run_id="dropped") as trace:
        spark.range(3).count()
        assert trace.flush(timeout=60).committed == 1
        shutil.rmtree(table)
        assert spark.range(4).count() == 4
        result = trace.flush(timeout=60)
        assert result.error is None and result.committed == 1
    assert [r["seq"] for r in table_rows(table)] == [2]  # recreated; later steps not lost


def test_a_hanging_sink_does_not_hang_flush(spark: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the bounded commit, flush() blocks as long as the table does."""
    release = threading.Event()
    ingest_module = sys.modules["pipetrace.ingest"]  # the package exports a function of that name
    real = ingest_module.ingest

    def stuck(**kwargs: Any) -> Any:
        release.wait(120)
        return real(**kwargs)

    monkeypatch.setattr(ingest_module, "ingest", stuck)  # what attach's committer calls
    trace = pipetrace.attach(spark, table=str(tmp_path / "steps"),
                             spool=str(tmp_path / "spool"), run_id="stuck")
    try:
        assert spark.range(5).count() == 5
        started = time.monotonic()
        result = trace.flush(timeout=2)
        assert result.timed_out and time.monotonic() - started < 10
    finally:
        release.set()
    assert trace.detach(timeout=60).error is None
    assert [r["seq"] for r in table_rows(tmp_path / "steps")] == [1]


def _jar_for_spark(tmp_path: Path, version: str, line: str) -> Path:
    crafted = tmp_path / "pipetrace-shim.jar"
    with zipfile.ZipFile(_jvm.jar_path()) as src, zipfile.ZipFile(crafted, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "META-INF/MANIFEST.MF":
                data = b"".join(
                    f"Spark-Version: {version}\n".encode() if row.startswith(b"Spark-Version:")
                    else f"Spark-Line: {line}\n".encode() if row.startswith(b"Spark-Line:")
                    else row for row in data.splitlines(keepends=True))
            dst.writestr(item, data)
    return crafted


def test_a_jar_built_for_another_spark_line_is_refused(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _jvm.check_jar(_jvm.jar_path(), spark.version)  # the jar we ship matches this Spark
    other = "spark35" if _jvm.spark_line(spark.version)["line"] != "spark35" else "spark4"
    crafted = _jar_for_spark(tmp_path, "3.5.1" if other == "spark35" else "4.0.5", other)
    monkeypatch.setattr(_jvm, "jar_path", lambda *_: crafted)
    with pytest.raises(JvmError, match=rf"built for the Spark line {other} .*, but this is Spark "):
        pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "spool"))
    monkeypatch.setattr(runner, "jar_path", lambda *_: crafted)
    monkeypatch.setenv("PIPETRACE_HOME", str(tmp_path / "home"))
    (tmp_path / "job.py").write_text("print('never runs')\n")
    with pytest.raises(JvmError, match="reinstall pipetrace with this pyspark installed"):
        runner.run_script(tmp_path / "job.py", [])
    assert not (tmp_path / "spool").exists() and not (tmp_path / "home").exists()


def test_pipetrace_run_without_java_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("print('never runs')\n")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = env_for(tmp_path / "home")
    env.pop("JAVA_HOME", None)
    env["PATH"] = str(empty_bin)
    done = subprocess.run([sys.executable, "-m", "pipetrace", "run", str(tmp_path / "job.py")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "no `java` is on PATH" in done.stderr and "openjdk-17" in done.stderr
    assert "never runs" not in done.stdout and "Traceback" not in done.stderr
    assert not (tmp_path / "home").exists()  # no spool, no table: nothing half-done


def test_pipetrace_run_keeps_the_scripts_exit_code_when_the_table_is_unwritable(
    tmp_path: Path,
) -> None:
    (tmp_path / "a_file").write_text("")
    (tmp_path / "job.py").write_text("import sys; print('job ran'); sys.exit(0)\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipetrace", "run", "--table",
         str(tmp_path / "a_file" / "t"), str(tmp_path / "job.py")],
        env=env_for(tmp_path / "home"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "job ran" in done.stdout
    assert "could not be committed" in done.stderr and "pipetrace status" in done.stderr


def test_invalid_table_name_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("print('never runs')\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipetrace", "run", "--table", "bad\nname", str(tmp_path / "job.py")],
        env=env_for(tmp_path / "home"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "invalid table location" in done.stderr
    assert "never runs" not in done.stdout


def test_status_shows_failed_commits_and_forgets_them_on_success(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    make_run(spool, "r1", table=None, segments=[make_steps("r1", 2)],
             open_segment=make_steps("r1", 1, first_seq=3), torn_tail='{"se')
    (tmp_path / "a_file").write_text("")
    for _ in range(2):
        with pytest.raises(TableError):
            ingest(spool=spool, table=str(tmp_path / "a_file" / "t"))
    [run] = status(spool=spool)
    assert (run.run_id, run.writer, run.sealed_segments, run.open_segments) == ("r1", "gone", 1, 1)
    assert (run.pending_steps, run.failed_attempts) == (3, 2)  # the torn tail is no step
    assert "Not a directory" in (run.last_error or "")
    shown = subprocess.run([sys.executable, "-m", "pipetrace", "status", "--spool", str(spool)],
                           env=env_for(tmp_path), capture_output=True, text=True, timeout=60)
    assert "r1" in shown.stdout and "Not a directory" in shown.stdout
    assert "pipetrace recover" in shown.stderr
    with held_writer_lock(spool / "r1"):
        ingest(spool=spool, table=str(tmp_path / "good"))  # commits the sealed segment
        [run] = status(spool=spool)
        assert (run.writer, run.pending_steps, run.failed_attempts) == ("alive", 1, 0)
    recovered = subprocess.run(
        [sys.executable, "-m", "pipetrace", "recover", "--spool", str(spool), "--table",
         str(tmp_path / "good")], env=env_for(tmp_path), capture_output=True, text=True,
        timeout=60)
    assert recovered.returncode == 0 and "recovered 1 steps" in recovered.stdout
    assert status(spool=spool) == []
    assert sorted(r["seq"] for r in table_rows(tmp_path / "good")) == [1, 2, 3]
