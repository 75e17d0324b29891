"""Tamper evidence: rows captured by the real listener verify; edited, deleted or reordered
rows are named by `pipetrace verify`, even after someone turned delta.appendOnly off. With a
key, rows rewritten with the public hash function fail too; the anchors in the Delta log catch
deleted last rows and deleted runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from spool_helpers import golden_steps

import pipetrace
from pipetrace._jvm import LISTENER_CLASS, jar_path
from pipetrace.anchors import Anchor, from_commit, read_anchors, user_metadata
from pipetrace.ingest import ingest
from pipetrace.keys import key_id
from pipetrace.query import sql
from pipetrace.schema import arrow_schema, delta_schema, rows_to_arrow
from pipetrace.verify import row_hash, verify


def verify_cli(table: str, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "PIPETRACE_HMAC_KEY"}
    return subprocess.run([sys.executable, "-m", "pipetrace", "verify", "--table", table, *args],
                          capture_output=True, text=True, timeout=120, env={**base, **(env or {})})


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
    "deleted-last": (lambda dt: dt.delete("seq >= 3"), 3, "the run's last rows were deleted"),
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


# --- Keyed hashes and anchors (issue 9 item 7) --------------------------------------------

TAMPER_FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "tamper.json").read_text())
KEY = TAMPER_FIXTURE["key_text"].encode().strip()
SCHEMA = json.loads(delta_schema().to_json())


@dataclass(frozen=True)
class Keyed:
    table: str
    run_id: str
    key_file: Path
    handle_key_id: str | None
    status_anchor: str | None


@pytest.fixture(scope="module")
def keyed_original(spark_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Keyed:
    """Four real steps captured once with the golden key (from a file, as a secret would be)."""
    base = tmp_path_factory.mktemp("keyed")
    key_file = base / "key"
    key_file.write_text(TAMPER_FIXTURE["key_text"])
    with pipetrace.attach(spark_session, table=str(base / "t"), spool=str(base / "s"),
                          hmac_key_file=str(key_file)) as trace:
        df = spark_session.range(100).filter("id % 3 = 0")
        df.count()
        df.collect()
        df.groupBy((df.id % 2).alias("k")).count().collect()
        spark_session.range(5).isEmpty()
        assert trace.flush().captured == 4
        anchor = trace.status()["anchor"]
    return Keyed(str(base / "t"), trace.run_id, key_file, trace.key_id, anchor)


@pytest.fixture
def keyed(keyed_original: Keyed, tmp_path: Path) -> Keyed:
    """A copy of the keyed capture for one test to tamper with."""
    shutil.copytree(keyed_original.table, tmp_path / "t")
    return replace(keyed_original, table=str(tmp_path / "t"))


def run_rows(table: str, run_id: str) -> list[dict[str, Any]]:
    return sql(f"SELECT * FROM pipeline_steps WHERE run_id = '{run_id}' ORDER BY seq",
               table=table).to_pylist()


def rewrite_run(table: str, run_id: str, rows: list[dict[str, Any]], *, rehash_from: int) -> None:
    """What an attacker without the key does: replace the run's rows, re-chaining them from
    ``rows[rehash_from]`` on with the public ``verify.row_hash``, through plain Delta commits."""
    for index in range(rehash_from, len(rows)):
        rows[index]["prev_hash"] = rows[index - 1]["row_hash"] if index else None
        rows[index]["row_hash"] = row_hash(rows[index], SCHEMA)
    dt = DeltaTable(table)
    dt.alter.set_table_properties({"delta.appendOnly": "false"})
    dt.delete(f"run_id = '{run_id}'")
    write_deltalake(table, pa.Table.from_pylist(rows, schema=arrow_schema()), mode="append")


def erase_log(table: str) -> None:
    """Drop every earlier commit (and its anchors) from the Delta log with Delta's own API:
    what anyone who may change the table's properties can do, and what log expiry does."""
    dt = DeltaTable(table)
    dt.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    dt = DeltaTable(table)
    dt.create_checkpoint()
    dt.cleanup_metadata()
    assert [h["version"] for h in DeltaTable(table).history()] == [dt.version()]


def edit_one_row(rows: list[dict[str, Any]]) -> int:
    rows[1]["rows_out"] = 999
    return 1


def delete_a_middle_row_and_renumber(rows: list[dict[str, Any]]) -> int:
    del rows[1]
    for seq, row in enumerate(rows, start=1):
        row["seq"] = seq
    return 1


def replace_the_run_by_a_forgery(rows: list[dict[str, Any]]) -> int:
    rows[:] = [{**row, "event_id": f"forged-{row['seq']}", "status": "SUCCEEDED", "error": None,
                "rows_out": 7} for row in rows[:3]]
    return 0


# The three attacks of issue 9: each rewrites hashes with the public function, without the key.
ATTACKS: dict[str, tuple[Callable[[list[dict[str, Any]]], int], int]] = {
    "row-edited-and-rehashed": (edit_one_row, 2),
    "middle-row-deleted-and-renumbered": (delete_a_middle_row_and_renumber, 2),
    "run-deleted-and-replaced-by-a-forgery": (replace_the_run_by_a_forgery, 1),
}


def test_keyed_golden_values_hold_in_python() -> None:
    """The fixture both sides are held to: key id, keyed hash of a golden step, anchor text."""
    assert key_id(KEY) == TAMPER_FIXTURE["key_id"]
    golden = rows_to_arrow(golden_steps()[:1]).to_pylist()[0]
    assert row_hash(golden, SCHEMA, KEY) == TAMPER_FIXTURE["golden_row_hmac"]
    assert row_hash(golden, SCHEMA) != TAMPER_FIXTURE["golden_row_hmac"]
    assert user_metadata(**TAMPER_FIXTURE["anchor"]) == TAMPER_FIXTURE["user_metadata"]
    assert from_commit({"version": 3, "userMetadata": TAMPER_FIXTURE["user_metadata"]}) == \
        Anchor(**TAMPER_FIXTURE["anchor"], version=3)


def test_the_listener_keys_hashes_and_anchors_like_python(keyed: Keyed) -> None:
    assert keyed.handle_key_id == TAMPER_FIXTURE["key_id"]  # HmacKey.java read the same key
    rows = run_rows(keyed.table, keyed.run_id)
    assert [row["row_hash"] == row_hash(row, SCHEMA, KEY) for row in rows] == [True] * 4
    # The anchor the JVM holds and the one the commit recorded are Python's, byte for byte.
    assert keyed.status_anchor == user_metadata(keyed.run_id, 4, rows[-1]["row_hash"],
                                                key_id(KEY))
    anchors, first = read_anchors(DeltaTable(keyed.table))
    assert first == 0
    assert anchors[keyed.run_id][-1] == Anchor(keyed.run_id, 4, rows[-1]["row_hash"],
                                               key_id(KEY), anchors[keyed.run_id][-1].version)


def test_a_keyed_run_verifies_with_its_key_and_only_with_it(keyed: Keyed, tmp_path: Path) -> None:
    report = verify(keyed.run_id, table=keyed.table, key=KEY)
    assert (report.ok, report.rows, report.key_id, report.unanchored) == (True, 4, key_id(KEY), [])
    ok = verify_cli(keyed.table, keyed.run_id, env={"PIPETRACE_HMAC_KEY": KEY.decode()})
    assert ok.returncode == 0, ok.stderr
    assert f"1 run(s), 4 rows checked with key {key_id(KEY)}: intact" in ok.stdout

    without = verify_cli(keyed.table)
    assert without.returncode == 1
    assert f"UNCHECKED run {keyed.run_id}: captured with key id {key_id(KEY)}" in without.stderr
    assert "detects accidental and naive edits only" in without.stderr

    wrong = tmp_path / "wrong"
    wrong.write_text("another key, long enough")
    result = verify_cli(keyed.table, "--key-file", str(wrong))
    assert result.returncode == 1
    assert (f"BROKEN run {keyed.run_id}: captured with key id {key_id(KEY)}, but the key given "
            f"has id {key_id(b'another key, long enough')}: wrong key") in result.stderr

    wrong.write_text("short\n")
    result = verify_cli(keyed.table, "--key-file", str(wrong))
    assert result.returncode == 2
    assert "has 5 bytes; use at least 16" in result.stderr


@pytest.mark.parametrize("how", list(ATTACKS))
def test_attacks_with_the_public_hash_are_real_without_a_key(captured: tuple[str, str],
                                                             how: str) -> None:
    """On a run captured without a key, the attack leaves a valid chain: once the Delta log no
    longer holds the run's anchors, verify finds nothing, as it found nothing before anchors."""
    table, run_id = captured
    attack, _ = ATTACKS[how]
    rows = run_rows(table, run_id)
    rewrite_run(table, run_id, rows, rehash_from=attack(rows))
    (caught,) = verify(run_id, table=table).breaks  # the anchors of the original commits
    assert "Delta version" in caught.reason
    erase_log(table)
    report = verify(run_id, table=table)
    assert (report.ok, report.unanchored) == (True, [run_id])


@pytest.mark.parametrize("how", list(ATTACKS))
def test_attacks_with_the_public_hash_fail_with_the_key(keyed: Keyed, how: str) -> None:
    attack, seq = ATTACKS[how]
    rows = run_rows(keyed.table, keyed.run_id)
    rewrite_run(keyed.table, keyed.run_id, rows, rehash_from=attack(rows))
    rewritten = "plain SHA-256, not an HMAC with the key: the row was rewritten"
    (broken,) = verify(keyed.run_id, table=keyed.table, key=KEY).breaks
    assert broken.seq == seq and rewritten in broken.reason
    erase_log(keyed.table)  # the key does not depend on the Delta log
    result = verify_cli(keyed.table, keyed.run_id, "--key-file", str(keyed.key_file))
    assert result.returncode == 1
    assert f"BROKEN run {keyed.run_id} at seq {seq}: row_hash is a {rewritten}" in result.stderr


def test_deleting_the_last_rows_is_caught_by_the_anchor(keyed: Keyed) -> None:
    rows = run_rows(keyed.table, keyed.run_id)
    dt = DeltaTable(keyed.table)
    dt.alter.set_table_properties({"delta.appendOnly": "false"})
    # The deleting commit even claims the run ends at seq 2: every anchor must still hold.
    claim = user_metadata(keyed.run_id, 2, rows[1]["row_hash"], key_id(KEY))
    dt.delete("seq >= 3", commit_properties=CommitProperties(custom_metadata={"userMetadata": claim}))
    (broken,) = verify(table=keyed.table, key=KEY).breaks
    assert (broken.run_id, broken.seq) == (keyed.run_id, 3)
    assert "seq 3 to 4 are missing" in broken.reason
    assert "the run's last rows were deleted" in broken.reason
    # What is not detected: once the Delta log no longer holds the anchors, nothing says the
    # run had more rows (README: Secrets and tamper evidence).
    erase_log(keyed.table)
    report = verify(table=keyed.table, key=KEY)
    assert (report.ok, report.rows, report.unanchored) == (True, 2, [keyed.run_id])


def test_deleting_a_whole_run_is_caught_by_the_anchor(keyed: Keyed) -> None:
    dt = DeltaTable(keyed.table)
    dt.alter.set_table_properties({"delta.appendOnly": "false"})
    dt.delete(f"run_id = '{keyed.run_id}'")
    report = verify(table=keyed.table, key=KEY)
    (broken,) = report.breaks
    assert (broken.run_id, broken.seq, report.runs, report.rows) == (keyed.run_id, None, 1, 0)
    assert "recorded 4 committed step(s): the run was deleted" in broken.reason
    result = verify_cli(keyed.table, keyed.run_id)
    assert result.returncode == 1
    assert f"BROKEN run {keyed.run_id}: no rows, though Delta version" in result.stderr


SCRIPT = """
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
spark.range(40).filter("id % 4 = 0").count()
spark.range(3).collect()
spark.stop()
"""


def test_a_cluster_key_in_the_environment_keys_configuration_only_capture(tmp_path: Path) -> None:
    """The init script's way (no pipetrace in the job): the driver reads $PIPETRACE_HMAC_KEY,
    which a Databricks cluster fills from a secret; `pipetrace ingest` anchors the run."""
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPETRACE_", "PYSPARK_"))}
    env.update(PIPETRACE_HMAC_KEY=TAMPER_FIXTURE["key_text"], PYSPARK_SUBMIT_ARGS=(
        f"--driver-class-path {jar_path()} "
        f"--conf spark.sql.queryExecutionListeners={LISTENER_CLASS} "
        f"--conf spark.pipetrace.spool={tmp_path / 'spool'} "
        "--conf spark.pipetrace.run_id=env-run pyspark-shell"))
    job = subprocess.run([sys.executable, str(script)], env=env, text=True, capture_output=True,
                         timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    table = str(tmp_path / "t")
    ingest(spool=tmp_path / "spool", table=table)
    report = verify(table=table, key=KEY)
    assert (report.ok, report.rows, report.unanchored) == (True, 2, [])
    assert [a.key_id for a in read_anchors(DeltaTable(table))[0]["env-run"]] == [key_id(KEY)]


def test_a_run_forged_under_a_new_id_is_caught_only_with_the_key(keyed: Keyed) -> None:
    rows = [{**row, "run_id": "forged-run"} for row in run_rows(keyed.table, keyed.run_id)]
    for index, row in enumerate(rows):
        row["prev_hash"] = rows[index - 1]["row_hash"] if index else None
        row["row_hash"] = row_hash(row, SCHEMA)
    write_deltalake(keyed.table, pa.Table.from_pylist(rows, schema=arrow_schema()), mode="append")
    without = verify("forged-run", table=keyed.table)
    assert (without.ok, without.unanchored) == (True, ["forged-run"])
    (broken,) = verify("forged-run", table=keyed.table, key=KEY).breaks
    assert (broken.seq, "plain SHA-256, not an HMAC" in broken.reason) == (1, True)


def test_with_a_key_an_unkeyed_run_is_not_vouched_for(captured: tuple[str, str]) -> None:
    table, run_id = captured
    result = verify_cli(table, run_id, env={"PIPETRACE_HMAC_KEY": KEY.decode()})
    assert result.returncode == 1
    assert f"BROKEN run {run_id}: captured without a key (its commits name none)" in result.stderr
    alone = verify_cli(table, run_id, env={"PIPETRACE_HMAC_KEY": ""})  # as the README says
    assert alone.returncode == 0, alone.stderr


def test_attach_warns_when_only_python_has_the_key(spark_session: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PIPETRACE_HMAC_KEY", KEY.decode())  # the driver JVM started without it
    with pipetrace.attach(spark_session, table=str(tmp_path / "t"),
                          spool=str(tmp_path / "s")) as trace:
        assert trace.key_id is None
    assert "the Spark driver hashes run" in caplog.text
    assert "with no key; set PIPETRACE_HMAC_KEY before Spark starts" in caplog.text
