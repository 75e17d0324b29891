"""Reading Delta tables: each input names the table (or its path) and the snapshot version the
action read. The oracle is Delta's own history (DESCRIBE HISTORY), never pipetrace's record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import flushed_steps


def history(spark: Any, table: str) -> list[dict[str, Any]]:
    """Delta's history of ``table`` (a name or delta.`path`), oldest first."""
    rows = spark.sql(f"DESCRIBE HISTORY {table}").collect()
    return sorted((r.asDict() for r in rows), key=lambda r: r["version"])


def only_input(step: Any) -> dict[str, Any]:
    (source,) = step["inputs"]
    return dict(source)


def test_delta_reads_record_the_snapshot_version_each_one_read(spark: Any, tmp_path: Path,
                                                               unique: str) -> None:
    path = str(tmp_path / "events")
    spark.range(100).write.format("delta").save(path)
    spark.range(100, 150).write.format("delta").mode("append").save(path)
    spark.range(150, 175).write.format("delta").mode("append").save(path)
    versions = history(spark, f"delta.`{path}`")
    assert [v["version"] for v in versions] == [0, 1, 2]
    at_v1 = versions[1]["timestamp"]
    spark.sql(f"CREATE TABLE {unique} USING delta LOCATION '{path}'")

    import pipetrace

    trace = pipetrace.attach(spark, table=str(tmp_path / "steps"), spool=str(tmp_path / "spool"),
                             run_id=f"reads-{unique}")
    try:
        latest = spark.read.format("delta").load(path).count()
        old = spark.read.format("delta").option("versionAsOf", 0).load(path).filter("id > 10").count()
        by_time = spark.read.format("delta").option("timestampAsOf", str(at_v1)).load(path).count()
        by_sql = spark.sql(f"SELECT count(*) AS n FROM delta.`{path}` WHERE id < 30").collect()
        by_name = spark.table(unique).count()
        steps = flushed_steps(trace)
    finally:
        trace.detach()

    assert (latest, old, by_time, by_sql[0]["n"], by_name) == (175, 89, 150, 30, 175)
    assert steps["rows_out"].tolist() == [175, 89, 150, 1, 175]
    qualified = f"file:{path}"
    expected = [("path", qualified, 2), ("path", qualified, 0), ("path", qualified, 1),
                ("path", qualified, 2), ("table", f"spark_catalog.default.{unique}", 2)]
    got = [(s["kind"], s["name"], s["version"]) for s in map(only_input, steps.to_dict("records"))]
    assert got == expected
    assert {only_input(s)["format"] for s in steps.to_dict("records")} == {"delta"}
