"""The shared schema: resources, Arrow conversion of spool steps, and the created table."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError
from spool_helpers import golden_steps, make_steps

from pipetrace.errors import SpoolError
from pipetrace.ingest import ensure_table
from pipetrace.schema import (
    SCHEMA_VERSION,
    TABLE_NAME,
    arrow_schema,
    delta_schema,
    parse_timestamp,
    rows_to_arrow,
    table_properties,
)


def _schema_json() -> dict[str, Any]:
    text = resources.files("pipetrace").joinpath("resources").joinpath("schema.json").read_text()
    return json.loads(text)


def test_resources_agree_with_golden_steps() -> None:
    assert TABLE_NAME == "pipeline_steps"
    assert {step["schema_version"] for step in golden_steps()} == {SCHEMA_VERSION}
    names = [f["name"] for f in _schema_json()["fields"]]
    assert arrow_schema().names == names
    assert [f.name for f in delta_schema().fields] == names


def test_created_table_has_columns_comments_and_append_only(tmp_path: Path) -> None:
    ensure_table(str(tmp_path / "t"))
    dt = DeltaTable(tmp_path / "t")
    expected = {f["name"]: f["metadata"]["comment"] for f in _schema_json()["fields"]}
    actual = {f.name: f.metadata.get("comment") for f in dt.schema().fields}
    assert actual == expected
    assert dt.metadata().name == TABLE_NAME
    assert "one row per Spark action" in (dt.metadata().description or "")
    assert dt.metadata().configuration == table_properties()
    assert table_properties()["delta.appendOnly"] == "true"
    assert "delta.dataSkippingStatsColumns" in table_properties()   # see test_secrets.py


def test_table_rejects_rewrites_because_it_is_append_only(tmp_path: Path) -> None:
    table = str(tmp_path / "t")
    ensure_table(table)
    write_deltalake(table, rows_to_arrow(make_steps("r1", 2)), mode="append")
    with pytest.raises(CommitFailedError, match="append-only"):
        DeltaTable(table).delete("seq = 1")


def test_golden_steps_convert_with_nested_values() -> None:
    table = rows_to_arrow(golden_steps())
    assert table.schema.equals(arrow_schema())
    rows = table.to_pylist()
    assert [r["action"] for r in rows] == ["count", "collect", "show", "write"]
    assert rows[0]["captured_at"] == datetime(2026, 11, 25, 3, 35, 11, 123456, tzinfo=timezone.utc)
    assert [op["name"] for op in rows[1]["operators"]] == [
        "HashAggregate", "Exchange", "SortMergeJoin", "Filter", "Project"]
    assert dict(rows[0]["operators"][0]["metrics"]) == {"aggTime": 1000000, "peakMemory": 262144}
    assert rows[1]["inputs"][1] == {"kind": "table", "name": "spark_catalog.crm.customers",
                                    "format": "delta", "version": 17, "path": None,
                                    "files": None, "bytes": None, "modified_max": None,
                                    "fingerprint": None}
    assert rows[3]["output"]["mode"] == "Overwrite"
    assert dict(rows[0]["tags"]) == {"team": "growth", "agent": "claude"}


def test_missing_keys_become_null() -> None:
    row = {"schema_version": 1, "event_id": "e", "run_id": "r", "seq": 1,
           "captured_at": "2026-11-25T03:35:11Z"}
    converted = rows_to_arrow([row]).to_pylist()[0]
    assert converted["operators"] is None and converted["output"] is None
    assert converted["tags"] is None and converted["status"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T03:35:11Z", datetime(2026, 11, 25, 3, 35, 11, tzinfo=timezone.utc)),
        ("2026-11-25T03:35:11.5Z", datetime(2026, 11, 25, 3, 35, 11, 500000, tzinfo=timezone.utc)),
        ("2026-11-25T03:35:11.123456789Z",
         datetime(2026, 11, 25, 3, 35, 11, 123456, tzinfo=timezone.utc)),
        ("2026-11-25T04:35:11+01:00", datetime(2026, 11, 25, 3, 35, 11, tzinfo=timezone.utc)),
    ],
)
def test_parse_timestamp(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


# (what to change in a valid step, the field the error must name)
BAD_ROWS: list[tuple[dict[str, Any], str]] = [
    ({"seq": "one"}, "'seq'"),
    ({"seq": None}, "'seq'"),
    ({"captured_at": "yesterday"}, "'captured_at'"),
    ({"captured_at": "2026-11-25T03:35:11"}, "'captured_at'"),  # no zone: ambiguous
    ({"execution_id": True}, "'execution_id'"),
    ({"operators": [{"name": "Filter"}]}, "'operators[0].id'"),
    ({"operators": [{"id": 2**40}]}, "'operators[0].id'"),
    ({"operators": {"id": 1}}, "'operators'"),
    ({"tags": {"team": 7}}, "'tags.team'"),
    ({"output": ["path"]}, "'output'"),
    ({"inputs": [{"kind": "path", "size": 3}]}, "'size'"),
    ({"row_digest": "abc"}, "'row_digest'"),  # a column this schema does not have
]


@pytest.mark.parametrize(("change", "field"), BAD_ROWS)
def test_rows_that_do_not_fit_name_the_field(change: dict[str, Any], field: str) -> None:
    good, bad = make_steps("r1", 2)
    bad.update(change)
    with pytest.raises(SpoolError, match=r"row 2: .*" + field.replace("[", r"\[").replace("]", r"\]")):
        rows_to_arrow([good, bad])


def test_empty_rows_give_an_empty_table_of_the_schema() -> None:
    empty = rows_to_arrow([])
    assert empty.num_rows == 0 and empty.schema.equals(arrow_schema())
    assert isinstance(empty, pa.Table)


def _without_newer_fields(dtype: Any, version: int) -> Any:
    """The schema as pipetrace wrote it at ``version``: fields added later (``since``) left out."""
    if isinstance(dtype, dict) and dtype.get("type") == "struct":
        return {**dtype, "fields": [
            {**f, "type": _without_newer_fields(f["type"], version)} for f in dtype["fields"]
            if (f.get("metadata") or {}).get("since", 1) <= version]}
    if isinstance(dtype, dict) and dtype.get("type") == "array":
        return {**dtype, "elementType": _without_newer_fields(dtype["elementType"], version)}
    return dtype


def test_a_table_of_schema_version_1_gains_new_columns_and_still_verifies(
        spark_session: Any, tmp_path: Path) -> None:
    """Additive evolution: a table an older pipetrace created (schema version 1, operators
    without rows_in) takes new steps, and its old rows keep verifying with their own columns."""
    from deltalake import Schema as DeltaSchema

    import pipetrace
    from pipetrace.verify import row_hash, verify

    table = str(tmp_path / "t")
    v1 = _without_newer_fields(_schema_json(), 1)
    assert "rows_in" not in json.dumps(v1)
    DeltaTable.create(table, schema=DeltaSchema.from_json(json.dumps(v1)), name=TABLE_NAME,
                      configuration=table_properties())
    with pipetrace.attach(spark_session, table=table, spool=str(tmp_path / "spool")) as trace:
        spark_session.range(10).filter("id > 3").count()
        assert trace.flush().error is None
    fields = json.loads(DeltaTable(table).schema().to_json())["fields"]
    ops = next(f for f in fields if f["name"] == "operators")["type"]["elementType"]["fields"]
    assert "rows_in" in [f["name"] for f in ops]
    (new,) = [s for _, s in trace.steps().iterrows()]
    assert new["schema_version"] == SCHEMA_VERSION == 4
    output = next(f for f in fields if f["name"] == "output")["type"]["fields"]
    assert [f["name"] for f in output][-4:] == ["version", "operation", "metrics", "path"]
    assert any(op["rows_in"] is not None for op in new["operators"])
    # a row as pipetrace 0.1 wrote it: version 1, no rows_in, hashed over version 1's columns
    old = golden_steps()[0]
    old = {**old, "schema_version": 1, "run_id": "old-run", "seq": 1, "prev_hash": None,
           "operators": [{k: v for k, v in op.items() if k != "rows_in"} for op in old["operators"]]}
    old["row_hash"] = row_hash(rows_to_arrow([old]).to_pylist()[0], _schema_json())
    write_deltalake(table, rows_to_arrow([old]), mode="append", schema_mode="merge")
    report = verify(table=table)
    assert report.ok, report.breaks
    assert (report.runs, report.rows) == (2, 2)
