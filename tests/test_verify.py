"""Tamper evidence: rows captured by the real listener verify; edited, deleted or reordered
rows are named by `pipetrace verify`, even after someone turned delta.appendOnly off."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

import pipetrace
from pipetrace.verify import verify


def verify_cli(table: str, *run: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipetrace", "verify", "--table", table, *run],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def original(spark_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Four real steps captured once; each test tampers with its own copy of the table."""
    base = tmp_path_factory.mktemp("verify")
    with pipetrace.attach(spark_session, table=str(base / "t"), spool=str(base / "s")) as trace:
        df = spark_session.range(100).filter("id % 3 = 0")
        df.count()
        df.collect()
        df.groupBy((df.id % 2).alias("k")).count().collect()
        spark_session.range(5).isEmpty()
        assert trace.flush().captured == 4
    yield base / "t", trace.run_id


@pytest.fixture
def captured(original: tuple[Path, str], tmp_path: Path) -> tuple[str, str]:
    shutil.copytree(original[0], tmp_path / "t")
    return str(tmp_path / "t"), original[1]


def test_captured_rows_verify(captured: tuple[str, str]) -> None:
    table, run_id = captured
    report = verify(run_id, table=table)
    assert (report.ok, report.runs, report.rows) == (True, 1, 4)
    result = verify_cli(table)
    assert result.returncode == 0, result.stderr
    assert "1 run(s), 4 rows checked: intact" in result.stdout


TAMPER: dict[str, tuple[Callable[[DeltaTable], Any], int, str]] = {
    "edited": (lambda dt: dt.update(updates={"rows_out": "999"}, predicate="seq = 2"),
               2, "edited"),
    "deleted": (lambda dt: dt.delete("seq = 2"), 2, "missing"),
    "deleted-first": (lambda dt: dt.delete("seq = 1"), 1, "missing"),
    "reordered": (lambda dt: dt.update(updates={"seq": "CASE WHEN seq = 2 THEN 3 ELSE 2 END"},
                                       predicate="seq IN (2, 3)"), 2, "edited"),
    "hash-recomputed-by-hand": (lambda dt: dt.update(
        updates={"row_hash": "'" + "0" * 64 + "'"}, predicate="seq = 3"), 3, "edited"),
}


@pytest.mark.parametrize("how", list(TAMPER))
def test_tampering_is_named(captured: tuple[str, str], how: str) -> None:
    table, run_id = captured
    tamper, seq, reason = TAMPER[how]
    DeltaTable(table).alter.set_table_properties({"delta.appendOnly": "false"})
    tamper(DeltaTable(table))
    result = verify_cli(table, run_id)
    assert result.returncode == 1
    assert f"BROKEN run {run_id} at seq {seq}:" in result.stderr
    assert reason in result.stderr
