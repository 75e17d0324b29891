"""Querying pipeline_steps with SQL and pandas, no Spark."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from spool_helpers import make_run, make_steps

from pipetrace.errors import QueryError, TableError
from pipetrace.ingest import ensure_table, ingest
from pipetrace.query import latest_run_id, sql, steps


@pytest.fixture
def table(tmp_path: Path) -> str:
    """A table with two runs; run-b's steps were captured after run-a's."""
    table = str(tmp_path / "pipeline_steps")
    spool = tmp_path / "spool"
    make_run(spool, "run-a", table=table, segments=[make_steps("run-a", 2)])
    later = make_steps("run-b", 4)
    for step in later:
        step["captured_at"] = step["captured_at"].replace("2026-11-25", "2026-11-26")
    make_run(spool, "run-b", table=table, segments=[later[2:], later[:2]])
    ingest(spool=spool, table=table)
    return table


def test_sql_returns_arrow_with_plain_types(table: str) -> None:
    result = sql("SELECT run_id, count(*) AS n FROM pipeline_steps GROUP BY run_id ORDER BY run_id",
                 table=table)
    assert result.to_pylist() == [{"run_id": "run-a", "n": 2}, {"run_id": "run-b", "n": 4}]
    assert result.schema.field("run_id").type == pa.string()  # not string_view
    nested = sql("SELECT operators, tags FROM pipeline_steps", table=table)
    assert nested.to_pandas().shape == (6, 2)


def test_latest_run_and_its_steps_in_seq_order(table: str) -> None:
    assert latest_run_id(table) == "run-b"
    frame = steps(table=table)
    assert list(frame["seq"]) == [1, 2, 3, 4]
    assert list(frame["action"]) == ["count", "collect", "show", "write"]
    assert set(frame["run_id"]) == {"run-b"}
    assert list(steps("run-a", table=table)["seq"]) == [1, 2]


def test_unknown_run_and_empty_table_give_no_steps(table: str, tmp_path: Path) -> None:
    assert steps("nope' OR '1'='1", table=table).empty
    empty = str(tmp_path / "empty")
    ensure_table(empty)
    assert latest_run_id(empty) is None
    assert steps(table=empty).empty


def test_missing_table_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"no pipeline_steps table at .*pipetrace run script.py"):
        sql("SELECT 1", table=str(tmp_path / "missing"))


@pytest.mark.parametrize("query", ["SELEC 1", "SELECT nope FROM pipeline_steps",
                                   "SELECT * FROM other_table"])
def test_bad_sql_is_a_query_error(table: str, query: str) -> None:
    with pytest.raises(QueryError, match="the table is called pipeline_steps"):
        sql(query, table=table)
