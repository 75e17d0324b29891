"""The rules jvm_shim and python/pipetrace share, checked on both sides against one fixture.

tests/fixtures/shared_rules.json holds the cases; the patterns themselves are written once, in
python/pipetrace/resources/rules.json (rules.py and Rules.java read it). Python is checked
directly, Java through ``Bridge.rule`` on the suite's SparkSession. A case that fails on one
side only is a disagreement between the listener and the tools that read what it writes.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pipetrace import rules, run_record, spool
from pipetrace._jvm import JvmBridge
from pipetrace.keys import ENV_VAR, key_id, load_key, mac
from pipetrace.locations import is_local, is_table_name, resolve_spool, runs_table
from pipetrace.runner import new_run_id
from pipetrace.schema import SCHEMA_VERSION, delta_schema, rows_to_arrow
from pipetrace.verify import row_hash

ROOT = Path(__file__).resolve().parents[1]
CASES: dict[str, Any] = json.loads((ROOT / "tests" / "fixtures" / "shared_rules.json")
                                   .read_text(encoding="utf-8"))
SCHEMA = json.loads(delta_schema().to_json())
TABLE_NAMES = ([(text, True) for text in CASES["table_names"]["names"]]
               + [(text, False) for text in CASES["table_names"]["paths"]])
LOCATIONS = ([(text, True) for text in CASES["locations"]["remote"]]
             + [(text, False) for text in CASES["locations"]["local"]])
RUN_IDS = ([(text, True) for text in CASES["run_ids"]["generated_shape"]]
           + [(text, False) for text in CASES["run_ids"]["other_shape"]])
ROWS = {case["name"]: case for case in CASES["rows"]}


def _key(text: str | None) -> bytes | None:
    return load_key(environ={ENV_VAR: text}) if text is not None else None


def _fresh(run_id: str) -> bool:
    stamp = datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    return abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 120


# --- Python -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "is_name"), TABLE_NAMES)
def test_python_table_names(text: str, is_name: bool) -> None:
    assert is_table_name(text) is is_name


@pytest.mark.parametrize(("text", "remote"), LOCATIONS)
def test_python_remote_locations(text: str, remote: bool) -> None:
    assert is_local(text) is not remote


@pytest.mark.parametrize(("number", "name"), CASES["segment_names"])
def test_python_segment_names(number: int, name: str) -> None:
    assert spool.segment_name(number) == name
    assert spool.segment_number(name) == number


@pytest.mark.parametrize("case", CASES["segment_numbers"], ids=lambda c: repr(c["name"]))
def test_python_segment_numbers(case: dict[str, Any]) -> None:
    assert spool.segment_number(case["name"], is_open=case["open"]) == case["number"]


@pytest.mark.parametrize(("text", "generated"), RUN_IDS)
def test_python_run_id_shape(text: str, generated: bool) -> None:
    assert bool(rules.RUN_ID.fullmatch(text)) is generated


@pytest.mark.parametrize(("steps", "runs"), CASES["runs_tables"])
def test_python_runs_table_beside_the_steps_table(steps: str, runs: str) -> None:
    assert runs_table(steps) == runs


def test_python_generates_run_ids_of_the_shape() -> None:
    made = new_run_id()
    assert rules.RUN_ID.fullmatch(made) and _fresh(made)


@pytest.mark.parametrize("case", CASES["spool"], ids=lambda c: repr(c["setting"]) + str(c["env"]))
def test_python_spool(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", CASES["spool_user_home"])
    for name in ("PIPETRACE_SPOOL", "PIPETRACE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in case["env"].items():
        monkeypatch.setenv(name, value)
    assert str(resolve_spool(case["setting"])) == case["expected"]


@pytest.mark.parametrize("case", CASES["keys"], ids=lambda c: c["key_id"])
def test_python_key_ids(case: dict[str, Any]) -> None:
    key = _key(case["key_text"])
    assert key is not None and key_id(key) == case["key_id"]


@pytest.mark.parametrize("name", ROWS)
def test_python_row_hashes(name: str) -> None:
    case = ROWS[name]
    key = _key(case["key_text"])
    encoded = case["encoding"].encode("utf-8")
    # The fixture agrees with itself: its row_hash is the hash of its encoding...
    assert case["row_hash"] == (mac(key, encoded) if key is not None
                                else hashlib.sha256(encoded).hexdigest())
    # ...and verify computes it from the row as ingest stores it (spool JSON -> Arrow -> table).
    stored = rows_to_arrow([case["row"]]).to_pylist()[0]
    assert row_hash(stored, SCHEMA, key) == case["row_hash"]


def test_patterns_are_written_once() -> None:
    """No module keeps its own copy of a shared pattern (they live in resources/rules.json)."""
    fragments = ["A-Za-z0-9+.-", "`[^`]+`", "seg-(", r"seg-\\d", r"seg-\d"]
    sources = [*(ROOT / "python" / "pipetrace").glob("*.py"),
               *(ROOT / "jvm_shim" / "src").rglob("*.java")]
    copies = [f"{path.name}: {fragment}" for path in sources
              for fragment in fragments if fragment in path.read_text(encoding="utf-8")]
    assert copies == []


# --- Java, through the suite's SparkSession -------------------------------------------------

@pytest.fixture
def jvm(spark: Any) -> JvmBridge:
    return JvmBridge(spark)


def test_java_reads_the_same_rules_and_schema_version(jvm: JvmBridge) -> None:
    table = json.loads((ROOT / "python" / "pipetrace" / "resources" / "table.json").read_text())
    assert jvm.rule("schema_version", None) == SCHEMA_VERSION == table["schema_version"]


def test_java_table_names_and_locations(jvm: JvmBridge) -> None:
    assert [jvm.rule("is_table_name", text) for text, _ in TABLE_NAMES] == \
        [is_name for _, is_name in TABLE_NAMES]
    assert [jvm.rule("is_remote", text) for text, _ in LOCATIONS] == \
        [remote for _, remote in LOCATIONS]


def test_java_runs_tables(jvm: JvmBridge) -> None:
    assert [jvm.rule("runs_table", steps) for steps, _ in CASES["runs_tables"]] == \
        [runs for _, runs in CASES["runs_tables"]]


def test_java_segments(jvm: JvmBridge) -> None:
    assert [jvm.rule("segment_name", number) for number, _ in CASES["segment_names"]] == \
        [name for _, name in CASES["segment_names"]]
    found = [jvm.rule("segment_number", {"name": c["name"], "open": c["open"]})
             for c in CASES["segment_numbers"]]
    assert [None if n == -1 else n for n in found] == \
        [c["number"] for c in CASES["segment_numbers"]]


def test_java_names_are_ascii_whatever_the_driver_locale(spark: Any, jvm: JvmBridge) -> None:
    """A driver JVM in an Arabic locale once named segments seg-١٧٣٢...: never committed."""
    locale = spark.sparkContext._jvm.java.util.Locale
    before = locale.getDefault()
    locale.setDefault(locale.forLanguageTag("ar-EG"))
    try:
        assert jvm.rule("segment_name", 1732000000000) == "seg-1732000000000.jsonl"
        assert rules.RUN_ID.fullmatch(jvm.rule("new_run_id", None))
    finally:
        locale.setDefault(before)


def test_java_run_ids(jvm: JvmBridge) -> None:
    assert [jvm.rule("is_run_id", text) for text, _ in RUN_IDS] == [ok for _, ok in RUN_IDS]
    made = jvm.rule("new_run_id", None)
    assert re.fullmatch(rules.RUN_ID.pattern, made) and _fresh(made)


def test_java_spool(jvm: JvmBridge) -> None:
    found = [jvm.rule("spool", {"setting": c["setting"], "env": c["env"],
                                "user_home": CASES["spool_user_home"]}) for c in CASES["spool"]]
    assert found == [c["expected"] for c in CASES["spool"]]


def test_java_key_ids(jvm: JvmBridge) -> None:
    assert [jvm.rule("key_id", c["key_text"]) for c in CASES["keys"]] == \
        [c["key_id"] for c in CASES["keys"]]


@pytest.mark.parametrize("name", ROWS)
def test_java_row_hashes(jvm: JvmBridge, name: str) -> None:
    case = ROWS[name]
    assert jvm.rule("row_hash", {"row": case["row"], "key_text": case["key_text"]}) == \
        case["row_hash"]


@pytest.mark.parametrize("case", CASES["conf_run_records"])
def test_java_and_python_end_a_run_captured_by_configuration_alike(
        jvm: JvmBridge, case: dict[str, Any], tmp_path: Path) -> None:
    """A run no Python side recorded: its row's status and reason are the same whether
    recovery (Python, delta-rs) or Spark's writer at exit (Java) commits it."""
    run_dir = tmp_path / case["record"]["run_id"]
    run_dir.mkdir()
    (run_dir / run_record.JVM_FILE).write_text(json.dumps(case["record"]), encoding="utf-8")
    assembled = run_record.assemble(run_dir)
    assert assembled is not None
    python_row, version = assembled
    java_row = json.loads(jvm.rule("conf_run_row", case["record"]))
    assert version == case["record"]["record_version"]
    for row in (python_row, java_row):
        assert {k: row.get(k) for k in case["row"]} == case["row"]
        assert "record_version" not in row
