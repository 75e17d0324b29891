"""Every step carries the agent's file:line (``call_site``): the test computes the line of each
action itself (the line after a ``next_line()`` marker) and compares with the record."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

import pipetrace
from pipetrace import hooks
from pipetrace.agent_steps import dataframe_class
from tests.conftest import flushed_steps


def next_line() -> str:
    """``file:line`` of the line after the caller's: where the test runs its action."""
    frame = inspect.currentframe().f_back  # type: ignore[union-attr]
    return f"{frame.f_code.co_filename}:{frame.f_lineno + 1}"  # type: ignore[union-attr]


def numbers(spark: Any) -> Any:
    return spark.range(0, 50).withColumn("g", F.col("id") % 5)


def helper_count(df: Any) -> tuple[str, int]:
    """An agent's helper: the action's line is here, two frames below the test."""
    line = next_line()
    n = df.count()
    return line, n


def site_of(steps: Any, action: str, line: str) -> list[str]:
    return steps[steps["action"] == action]["call_site"].tolist()


def test_every_action_kind_names_its_line(spark: Any, trace: Any, tmp_path: Path,
                                          unique: str) -> None:
    df = numbers(spark)
    expected: list[tuple[str, str]] = []  # (action, file:line)
    expected.append(("count", next_line()))
    df.count()
    expected.append(("show", next_line()))
    df.show(3)
    expected.append(("collect", next_line()))
    df.filter("id < 5").collect()
    expected.append(("take", next_line()))
    df.take(2)
    expected.append(("take", next_line()))
    df.first()
    expected.append(("toPandas", next_line()))
    df.toPandas()
    expected.append(("write", next_line()))
    df.write.parquet(str(tmp_path / "out"))
    expected.append(("write", next_line()))
    df.write.saveAsTable(f"{unique}_a")
    expected.append(("write", next_line()))
    df.write.insertInto(f"{unique}_a")
    expected.append(("command", next_line()))
    spark.sql(f"CREATE TABLE {unique}_b (id BIGINT, g BIGINT) USING parquet")
    expected.append(("write", next_line()))
    spark.sql(f"INSERT INTO {unique}_b SELECT * FROM {unique}_a")
    expected.append(("write", next_line()))
    spark.sql(f"CREATE TABLE {unique}_c USING parquet AS SELECT * FROM {unique}_a")
    expected.append(("write", next_line()))
    df.writeTo(f"{unique}_d").using("parquet").create()
    expected.append(("isEmpty", next_line()))
    df.isEmpty()
    expected.append(("count", next_line()))
    line, _ = helper_count(df)
    expected[-1] = ("count", line)
    steps = flushed_steps(trace)
    recorded = list(zip(steps["action"], steps["call_site"], strict=True))
    for action, line in expected:
        assert (action, line) in recorded, (action, line, recorded)
    # No step points into pyspark or pipetrace.
    for site in steps["call_site"].dropna():
        assert "/pyspark/" not in site and "/pipetrace/" not in site, site


def test_two_threads_each_get_their_own_line(spark: Any, trace: Any) -> None:
    df = numbers(spark)
    lines: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def worker(name: str, mod: int) -> None:
        barrier.wait()
        for _ in range(3):
            lines[name] = next_line()
            df.filter(F.col("g") == mod).count()

    threads = [threading.Thread(target=worker, args=(f"t{i}", i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    steps = flushed_steps(trace)
    counts = steps[steps["action"] == "count"]
    assert len(counts) == 6
    # Both threads run the same line; every count names it (none is missing or another's).
    assert set(counts["call_site"]) == {lines["t0"]} == {lines["t1"]}


def test_a_job_description_does_not_hide_the_line(spark: Any, trace: Any, tmp_path: Path) -> None:
    """The user's job description replaces Spark's short call site in the execution's
    description; the action's line is still recorded, and the description is left as set."""
    df = numbers(spark)
    sc = spark.sparkContext
    sc.setJobDescription("nightly cohort build")
    try:
        lines = [next_line()]
        df.count()
        lines.append(next_line())
        df.write.parquet(str(tmp_path / "described"))
        assert sc.getLocalProperty("spark.job.description") == "nightly cohort build"
    finally:
        sc.setJobDescription(None)
    steps = flushed_steps(trace)
    assert list(zip(steps["action"], steps["call_site"], strict=True)) == [
        ("count", lines[0]), ("write", lines[1])]
    assert sc.getLocalProperty("callSite.short") is None
    assert sc.getLocalProperty("callSite.long") is None


def test_detach_uninstalls_and_reattach_reinstalls(spark: Any, tmp_path: Path) -> None:
    cls = dataframe_class()
    before = cls.count
    first = pipetrace.attach(spark, table=str(tmp_path / "t1"), spool=str(tmp_path / "s1"))
    assert cls.count is not before and hooks.installed()
    first.detach()
    assert cls.count is before and not hooks.installed()
    again = pipetrace.attach(spark, table=str(tmp_path / "t2"), spool=str(tmp_path / "s2"))
    try:
        line = next_line()
        numbers(spark).count()
        steps = flushed_steps(again)
        assert steps["call_site"].tolist() == [line]
    finally:
        again.detach()
    assert cls.count is before


@pytest.mark.parametrize("name", ["count", "collect", "show", "save", "sql"])
def test_wrappers_keep_pyspark_signature_and_docs(name: str, spark: Any, trace: Any) -> None:
    from pyspark.sql import readwriter, session
    owner = {"save": readwriter.DataFrameWriter, "sql": session.SparkSession}.get(
        name, dataframe_class())
    method = getattr(owner, name)
    assert method.__name__ == name and method.__doc__ == method.__wrapped__.__doc__
    assert inspect.signature(method) == inspect.signature(method.__wrapped__)
