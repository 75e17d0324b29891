"""Reading the spool the JVM writes: runs, manifests, segments, writer liveness, recovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spool_helpers import held_writer_lock, lines, make_run, make_steps, write_manifest

from pipetrace import spool as sp
from pipetrace.errors import SpoolError


def test_runs_and_segments_are_listed_in_order(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r2", table=None, segments=[make_steps("r2", 1)] * 11,
                   open_segment=make_steps("r2", 1, first_seq=12))
    make_run(tmp_path, "r1", table=None, segments=[])
    (tmp_path / "stray.txt").write_text("not a run")
    assert [p.name for p in sp.list_runs(tmp_path)] == ["r1", "r2"]
    assert [s.number for s in sp.sealed_segments(run)] == list(range(1, 12))
    [opened] = sp.open_segments(run)
    assert (opened.number, opened.is_open, opened.sealed_name) == (12, True, "seg-000012.jsonl")
    assert sp.list_runs(tmp_path / "missing") == []


def test_manifest_is_read(tmp_path: Path) -> None:
    write_manifest(tmp_path / "r1", "r1", "/data/pipeline_steps")
    manifest = sp.read_manifest(tmp_path / "r1")
    assert (manifest.run_id, manifest.table, manifest.schema_version) == (
        "r1", "/data/pipeline_steps", 1)
    assert manifest.host == "testhost" and manifest.pid == 4242


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"table": None})])
def test_missing_or_malformed_manifest_says_what_to_do(tmp_path: Path, content: str | None) -> None:
    run = tmp_path / "r1"
    run.mkdir()
    if content is not None:
        (run / "run.json").write_text(content)
    with pytest.raises(SpoolError, match="delete the"):
        sp.read_manifest(run)


def test_writer_state_absent_gone_alive(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r1", table=None, segments=[], writer_lock=False)
    assert sp.writer_state(run) == "absent"
    (run / "writer.lock").touch()
    assert sp.writer_state(run) == "gone"
    with held_writer_lock(run):
        assert sp.writer_state(run) == "alive" and sp.writer_alive(run)
    assert sp.writer_state(run) == "gone"


def test_segment_torn_tail_and_blank_lines_are_ignored(tmp_path: Path) -> None:
    seg = tmp_path / "seg-000001.jsonl"
    seg.write_text(lines(make_steps("r1", 2)) + "\n" + '{"seq": 3, "run_')
    assert [row["seq"] for row in sp.read_segment(seg)] == [1, 2]


@pytest.mark.parametrize("bad", ["not json", "[1, 2]", '{"seq": 1'])
def test_segment_with_a_bad_line_names_the_line(tmp_path: Path, bad: str) -> None:
    seg = tmp_path / "seg-000001.jsonl"
    seg.write_text(lines(make_steps("r1", 2)) + bad + "\n")
    with pytest.raises(SpoolError, match=r"seg-000001\.jsonl line 3"):
        sp.read_segment(seg)


def test_dead_writer_open_segment_is_recovered_without_its_torn_tail(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r1", table=None, segments=[make_steps("r1", 1)],
                   open_segment=make_steps("r1", 2, first_seq=2), torn_tail='{"seq": 4')
    [recovered] = sp.recover_open_segments(run)
    assert recovered.path == run / "seg-000002.jsonl" and not recovered.is_open
    assert recovered.path.read_text() == lines(make_steps("r1", 2, first_seq=2))
    assert sp.open_segments(run) == []


def test_live_writer_open_segment_is_left_alone(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r1", table=None, segments=[],
                   open_segment=make_steps("r1", 1), torn_tail='{"seq"')
    before = (run / "seg-000001.jsonl.open").read_text()
    with held_writer_lock(run):
        assert sp.recover_open_segments(run) == []
    assert (run / "seg-000001.jsonl.open").read_text() == before


def test_quarantine_moves_the_segment_with_its_reason(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r1", table=None, segments=["garbage\n"])
    [seg] = sp.sealed_segments(run)
    moved = sp.quarantine(seg, "line 1: not valid JSON")
    assert moved == run / "quarantine" / "seg-000001.jsonl" and moved.read_text() == "garbage\n"
    assert "not valid JSON" in (run / "quarantine" / "seg-000001.jsonl.reason").read_text()
    assert sp.sealed_segments(run) == []


def test_finished_run_dir_is_removed_only_when_empty_and_writer_gone(tmp_path: Path) -> None:
    busy = make_run(tmp_path, "busy", table=None, segments=[make_steps("busy", 1)])
    assert not sp.remove_run_if_done(busy)
    live = make_run(tmp_path, "live", table=None, segments=[])
    with held_writer_lock(live):
        assert not sp.remove_run_if_done(live)
    starting = make_run(tmp_path, "starting", table=None, segments=[], writer_lock=False)
    assert not sp.remove_run_if_done(starting)
    assert sp.remove_run_if_done(live) and not live.exists()
    assert busy.exists() and starting.exists()
