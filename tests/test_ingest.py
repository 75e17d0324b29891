"""Committing the spool into a real delta-rs table: exactly once, recovery, quarantine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable
from spool_helpers import held_writer_lock, lines, make_run, make_steps, write_manifest

from pipetrace.anchors import Anchor, read_anchors
from pipetrace.errors import TableError
from pipetrace.ingest import app_id, ensure_table, ingest
from pipetrace.query import sql


def _seqs(table: str, run_id: str) -> list[int]:
    result = sql(f"SELECT seq FROM pipeline_steps WHERE run_id = '{run_id}' ORDER BY seq",
                 table=table)
    return result.column("seq").to_pylist()


@pytest.fixture
def table(tmp_path: Path) -> str:
    return str(tmp_path / "pipeline_steps")


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def test_segments_of_a_run_go_in_one_commit_with_its_txn(table: str, spool: Path) -> None:
    run = make_run(spool, "r1", table=table, segments=[
        make_steps("r1", 2), make_steps("r1", 3, first_seq=3), make_steps("r1", 1, first_seq=6)])
    result = ingest(spool=spool, table=table)
    assert (result.steps, result.segments, result.runs) == (6, 3, ["r1"])
    assert result.failed_steps == 1  # the golden failed `show`
    assert _seqs(table, "r1") == [1, 2, 3, 4, 5, 6]
    dt = DeltaTable(table)
    assert dt.version() == 1  # 0 = create, 1 = the run's single commit
    assert dt.transaction_version(app_id("r1")) == 3
    assert not run.exists() and result.removed_runs == ["r1"]


def test_each_commit_anchors_its_runs_last_step_in_the_delta_log(table: str, spool: Path) -> None:
    steps = make_steps("r1", 5)
    for step in steps:
        step["row_hash"] = f"{step['seq']:064x}"
    run = make_run(spool, "r1", table=table, segments=[steps[3:1:-1], steps[:2]])
    write_manifest(run, "r1", table, key_id="794789e3408b6bc9")
    ingest(spool=spool, table=table)
    run = make_run(spool, "r1", table=table, segments=[steps[4:]], first_segment=3)
    write_manifest(run, "r1", table)
    ingest(spool=spool, table=table)
    anchors, first = read_anchors(DeltaTable(table))
    # the highest seq of each commit, whatever the order of its segments; the manifest's key id
    assert (first, anchors["r1"]) == (0, [
        Anchor("r1", 4, f"{4:064x}", "794789e3408b6bc9", version=1),
        Anchor("r1", 5, f"{5:064x}", None, version=2)])


def test_ingesting_twice_does_not_duplicate(table: str, spool: Path) -> None:
    make_run(spool, "r1", table=table, segments=[make_steps("r1", 4)])
    ingest(spool=spool, table=table)
    again = ingest(spool=spool, table=table)
    assert again.steps == 0
    assert _seqs(table, "r1") == [1, 2, 3, 4]


def test_crash_after_commit_before_delete_does_not_duplicate(
    table: str, spool: Path, tmp_path: Path
) -> None:
    run = make_run(spool, "r1", table=table, segments=[make_steps("r1", 2),
                                                         make_steps("r1", 2, first_seq=3)])
    backup = tmp_path / "backup"
    shutil.copytree(run, backup)
    ingest(spool=spool, table=table)
    # The crash: the commit landed but the segments were never deleted; the JVM then
    # sealed one more segment.
    shutil.copytree(backup, run)
    (run / "seg-000003.jsonl").write_text(lines(make_steps("r1", 1, first_seq=5)))
    result = ingest(spool=spool, table=table)
    assert (result.steps, result.already_committed) == (1, 2)
    assert _seqs(table, "r1") == [1, 2, 3, 4, 5]
    assert DeltaTable(table).transaction_version(app_id("r1")) == 3
    assert not run.exists()


def test_dead_writer_open_segment_is_committed_without_torn_tail(table: str, spool: Path) -> None:
    make_run(spool, "r1", table=table, segments=[make_steps("r1", 2)],
             open_segment=make_steps("r1", 2, first_seq=3), torn_tail='{"run_id": "r1", "se')
    result = ingest(spool=spool, table=table)
    assert result.steps == 4 and _seqs(table, "r1") == [1, 2, 3, 4]


def test_live_writer_keeps_its_open_segment_until_it_is_gone(table: str, spool: Path) -> None:
    run = make_run(spool, "r1", table=table, segments=[make_steps("r1", 2)],
                   open_segment=make_steps("r1", 1, first_seq=3), torn_tail='{"se')
    with held_writer_lock(run):
        first = ingest(spool=spool, table=table)
        assert first.steps == 2 and first.removed_runs == []
        assert (run / "seg-000002.jsonl.open").exists()
    second = ingest(spool=spool, table=table)  # the JVM died: recover and finish the run
    assert second.steps == 1 and second.removed_runs == ["r1"]
    assert _seqs(table, "r1") == [1, 2, 3]


def test_corrupt_segments_are_quarantined_and_later_ones_still_commit(
    table: str, spool: Path
) -> None:
    bad_schema = make_steps("r1", 1, first_seq=4)
    bad_schema[0]["seq"] = "four"
    other_run = make_steps("r2", 1, first_seq=5)
    run = make_run(spool, "r1", table=table, segments=[
        make_steps("r1", 2),                    # 1: fine
        lines(make_steps("r1", 1, first_seq=3)) + "{oops\n",  # 2: not JSON
        make_steps("r1", 1, first_seq=3),       # 3: fine
        bad_schema,                             # 4: does not fit the schema
        other_run,                              # 5: a step of another run
    ])
    result = ingest(spool=spool, table=table)
    assert _seqs(table, "r1") == [1, 2, 3]
    quarantined = {q.path.name: q.reason for q in result.quarantined}
    assert set(quarantined) == {"seg-000002.jsonl", "seg-000004.jsonl", "seg-000005.jsonl"}
    assert "line 2: not valid JSON" in quarantined["seg-000002.jsonl"]
    assert "'seq'" in quarantined["seg-000004.jsonl"]
    assert "does not match" in quarantined["seg-000005.jsonl"]
    assert (run / "quarantine" / "seg-000002.jsonl").exists()
    assert run.exists()  # kept so the quarantined segments can be inspected
    # The JVM keeps going: segment 6 commits past the quarantined ones.
    (run / "seg-000006.jsonl").write_text(lines(make_steps("r1", 1, first_seq=6)))
    assert ingest(spool=spool, table=table).steps == 1
    assert _seqs(table, "r1") == [1, 2, 3, 6]
    assert DeltaTable(table).transaction_version(app_id("r1")) == 6


def test_runs_for_another_table_are_skipped_and_kept(table: str, spool: Path, tmp_path: Path) -> None:
    other = make_run(spool, "other", table=str(tmp_path / "elsewhere"),
                     segments=[make_steps("other", 1)])
    make_run(spool, "unset", table=None, segments=[make_steps("unset", 1)])
    make_run(spool, "uri", table=f"file://{table}/", segments=[make_steps("uri", 1)])
    result = ingest(spool=spool, table=table)
    assert sorted(result.runs) == ["unset", "uri"]
    [skipped] = result.skipped
    assert skipped.run_id == "other" and f"--table {tmp_path / 'elsewhere'}" in skipped.reason
    assert (other / "seg-000001.jsonl").exists()


def test_newer_schema_runs_are_skipped_with_upgrade_advice(table: str, spool: Path) -> None:
    make_run(spool, "r1", table=table, segments=[make_steps("r1", 1)])
    (spool / "r1" / "run.json").write_text(
        (spool / "r1" / "run.json").read_text().replace('"schema_version": 1', '"schema_version": 99'))
    [skipped] = ingest(spool=spool, table=table).skipped
    assert "upgrade pipetrace" in skipped.reason


def test_only_the_requested_runs_are_ingested(table: str, spool: Path) -> None:
    make_run(spool, "r1", table=table, segments=[make_steps("r1", 1)])
    make_run(spool, "r2", table=table, segments=[make_steps("r2", 1)])
    assert ingest(spool=spool, table=table, run_ids=["r2"]).runs == ["r2"]
    assert (spool / "r1").exists()


def test_defaults_come_from_pipetrace_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPETRACE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PIPETRACE_TABLE", raising=False)
    monkeypatch.delenv("PIPETRACE_SPOOL", raising=False)
    default_table = str(tmp_path / "home" / "pipeline_steps")
    make_run(tmp_path / "home" / "spool", "r1", table=None, segments=[make_steps("r1", 2)])
    result = ingest()
    assert result.table == default_table and result.steps == 2
    monkeypatch.setenv("PIPETRACE_TABLE", str(tmp_path / "env_table"))
    assert ingest().table == str(tmp_path / "env_table")
    assert ingest(table=str(tmp_path / "arg_table")).table == str(tmp_path / "arg_table")


def test_unwritable_table_location_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(TableError, match="choose a writable location with --table"):
        ensure_table(str(tmp_path / "a_file" / "pipeline_steps"))


def test_concurrent_committers_of_one_run_do_not_duplicate(table: str, spool: Path) -> None:
    ensure_table(table)
    make_run(spool, "r1", table=table, segments=[make_steps("r1", 2, first_seq=1 + 2 * i)
                                                 for i in range(20)])
    code = ("import sys; from pipetrace.ingest import ingest; "
            "ingest(spool=sys.argv[1], table=sys.argv[2])")
    env_path = str(Path(__file__).resolve().parents[1] / "python")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(spool), table],
                              env={**os.environ, "PYTHONPATH": env_path})
             for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert _seqs(table, "r1") == list(range(1, 41))


def test_a_second_create_committed_meanwhile_does_not_fail_the_append(
        table: str, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two committers creating the table at once can both commit a CREATE (delta-rs retries
    the loser's as version 1). An append that read the table before that second CREATE used
    to fail with "Metadata changed since last commit" (seen in the 4-process test)."""
    from pipetrace.schema import delta_schema

    ingest_module = sys.modules["pipetrace.ingest"]  # the package exports a function of that name

    ensure_table(table)
    real = ingest_module.write_deltalake
    raced = []

    def write_after_a_concurrent_create(*args: object, **kwargs: object) -> object:
        if not raced:  # the other committer's CREATE lands between our read and our write
            raced.append(DeltaTable.create(table, schema=delta_schema(), mode="overwrite"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "write_deltalake", write_after_a_concurrent_create)
    make_run(spool, "r1", table=table, segments=[make_steps("r1", 3)])
    assert ingest(spool=spool, table=table).steps == 3
    assert raced and _seqs(table, "r1") == [1, 2, 3]
