"""The benchmark workloads: each builds a list of *units*, each unit a callable that does one
timed piece of user work (a batch of actions). The harness runs every unit with capture off
and on, interleaved, so drift on a shared 2-core machine hits both sides alike.

Example::

    >>> units = small_counts(spark, actions=3)  # doctest: +SKIP
    >>> units[0][0], units[0][1]()  # doctest: +SKIP
    ('counts', [500, 667, 751])
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from benchmarks import tpch

__all__ = ["Unit", "deep_plan", "deep_plan_frame", "failing_action", "pipeline_frame",
           "small_counts", "tpch_units", "writes"]

# (name, body): body runs the user's actions of one unit and returns the truth of each action
# where it knows it (the rows count() returned, collect() handed back, a write wrote), in order;
# what a capture recorded is compared with it.
Unit = tuple[str, Callable[[], list[int] | None]]


def small_counts(spark: Any, actions: int) -> list[Unit]:
    """Many small actions (an agent exploring): ``actions`` count()s over 10 small DataFrames."""
    frames = [spark.range(0, 1000 + i).withColumn("k", F.col("id") % (i + 2)).filter("k > 0")
              for i in range(10)]

    def body() -> list[int]:
        return [df.count() for df in itertools.islice(itertools.cycle(frames), actions)]

    return [("counts", body)]


def deep_plan_frame(spark: Any, columns: int, rows: int = 10_000) -> DataFrame:
    """``columns`` chained withColumn, then a join and an aggregate: a plan of ~columns nodes."""
    df = spark.range(rows).withColumn("k", F.col("id") % 97)
    for i in range(columns):
        df = df.withColumn(f"c{i}", F.col("id") * (i + 1) + F.col("k"))
    dim = spark.range(97).withColumnRenamed("id", "dk").withColumn("name", F.concat(
        F.lit("n"), F.col("dk").cast("string")))
    last = f"c{columns - 1}" if columns else "id"
    return (df.join(dim, F.col("k") == F.col("dk")).groupBy("name")
            .agg(F.sum(last).alias("total"), F.count("*").alias("n")))


def deep_plan(spark: Any, columns: int, collects: int) -> list[Unit]:
    """A deep plan collected ``collects`` times (the DataFrame is built once, outside timing)."""
    df = deep_plan_frame(spark, columns)

    def body() -> list[int]:
        return [len(df.collect()) for _ in range(collects)]

    return [("deep_plan", body)]


def writes(spark: Any, appends: int, out: Path) -> list[Unit]:
    """``appends`` small parquet appends to one directory (cleared before each unit)."""
    rows = 100
    df = spark.range(rows).withColumn("v", F.col("id") * 2)

    def body() -> list[int]:
        shutil.rmtree(out, ignore_errors=True)
        for _ in range(appends):
            df.write.mode("append").parquet(str(out))
        return [rows] * appends

    return [("writes", body)]


def tpch_units(spark: Any, data: Path, queries: list[int] | None = None) -> list[Unit]:
    """The TPC-H queries (default all 22), each collected: one unit per query.

    Each run builds its DataFrame afresh, as a pipeline does: collecting the same DataFrame
    twice reuses its QueryExecution, whose adaptive plan keeps the shuffle stages it already
    materialized, so a second run would skip most of the work.
    """
    tables = tpch.load_tables(spark, data)
    units: list[Unit] = []
    for i, query in enumerate(tpch.QUERIES, start=1):
        if queries and i not in queries:
            continue
        units.append((f"q{i}", lambda query=query: [len(query(tables).collect())]))
    return units


def pipeline_frame(spark: Any, rows: int) -> DataFrame:
    """The growth pipeline at a data size: filter, derive, join a dimension, aggregate."""
    facts = (spark.range(rows).withColumn("k", F.col("id") % 1000)
             .withColumn("v", F.col("id") * 3 % 101).filter("v > 10"))
    dim = spark.range(1000).withColumnRenamed("id", "dk").withColumn("g", F.col("dk") % 7)
    return (facts.join(dim, F.col("k") == F.col("dk")).groupBy("g")
            .agg(F.sum("v").alias("s"), F.count("*").alias("n")))


def failing_action(spark: Any, kind: str, chars: int) -> Callable[[], None]:
    """A collect that fails with a message of ``chars`` characters (built afresh per call).

    ``kind`` "udf": a Python UDF raises it, so it is only in the error. "raise_error": the
    message is also a literal of the plan, so every plan text and operator holds it too.
    """
    # A payload dump (a response body, a bad batch): text every redaction rule has to look at.
    record = '{"id": 17, "name": "ann", "key": "k-17", "url": "https://h.example/p"} '
    message = ("pipetrace-bench " + record * (chars // len(record) + 1))[:chars]
    if kind == "udf":
        @F.udf("string")
        def fail(_: Any) -> str:
            raise ValueError(message)

        df = spark.range(1).select(fail("id"))
    else:
        df = spark.range(1).select(F.raise_error(F.lit(message)))

    def body() -> None:
        with contextlib.suppress(Exception):   # the failure is the workload
            df.collect()

    return body
