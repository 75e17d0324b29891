"""The capture corpus: PySpark actions on the plan shapes real pipelines have, each with the
way to compute its truth independently of pipetrace.

One ``Case`` per row of the table below. ``act`` runs the one action with capture on; ``rows``
computes what the step's ``rows_out`` must be from what the action returned (or, for writes,
from what was written); each ``Check`` names an operator (a regex over its name and
description, first match in pre-order) and a DataFrame whose ``count()`` is the number of rows
that operator must record. ``cut`` names operators that a limit above stops early: their count
must be null with the reason in ``capture_warnings``. ``null_rows`` marks cases whose
``rows_out`` cannot be known from Spark's metrics: null, with a warning containing that text.

Data (made by ``make_env``): ``facts`` is 30,000 rows in 4 parquet files (``k`` 97 keys,
``g`` 13 groups, ``v`` 0..999), ``dim`` 60 keys of ``k``, ``mem`` the same 30,000 ids from
``spark.range`` (Spark counts its rows in batches), ``parts`` the same rows as ``facts``
partitioned by ``g`` (a filter on ``g`` prunes whole directories).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

Env = SimpleNamespace


@dataclass(frozen=True)
class Check:
    """An operator of the step and the DataFrame whose count() is its true rows_out."""

    match: str
    truth: Callable[[Env], DataFrame]
    rows_in: tuple[Callable[[Env], DataFrame], ...] | None = None


@dataclass(frozen=True)
class Case:
    id: str
    action: str
    act: Callable[[Env], Any]
    rows: Callable[[Any, Env], int]
    checks: tuple[Check, ...] = ()
    cut: tuple[str, ...] = ()
    conf: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Env], None] | None = None
    null_rows: str | None = None


def make_env(spark: Any, root: Path) -> Env:
    """The corpus' data, written once under ``root``."""
    facts_path = root / "facts"
    if not facts_path.exists():
        (spark.range(0, 30_000, 1, 4)
         .withColumn("k", F.col("id") % 97).withColumn("g", F.col("id") % 13)
         .withColumn("v", (F.col("id") * 7) % 1000)
         .write.parquet(str(facts_path)))
        (spark.range(0, 60, 1, 1).withColumnRenamed("id", "k")
         .withColumn("name", F.concat(F.lit("n"), F.col("k").cast("string")))
         .write.parquet(str(root / "dim")))
        spark.read.parquet(str(facts_path)).write.partitionBy("g").parquet(str(root / "parts"))
    env = SimpleNamespace(spark=spark, root=root, facts_path=str(facts_path),
                          token=uuid.uuid4().hex[:8])
    env.facts = spark.read.parquet(str(facts_path))
    env.dim = spark.read.parquet(str(root / "dim"))
    env.parts = spark.read.parquet(str(root / "parts"))
    env.mem = spark.range(0, 30_000, 1, 4)
    return env


def _len(result: Any, env: Env) -> int:
    return len(result)


def _value(result: Any, env: Env) -> int:
    return int(result)


def _agg(env: Env) -> DataFrame:
    return env.facts.groupBy("k").agg(F.sum("v").alias("s"))


def _ranked(env: Env) -> DataFrame:
    w = Window.partitionBy("g").orderBy("v", "id")
    return env.facts.withColumn("rn", F.row_number().over(w))


def _fill_cache(env: Env) -> int:
    env.cached = env.facts.filter("g = 3").cache()
    return env.cached.count()


def _written(env: Env, name: str) -> str:
    return str(env.root / "out" / f"{name}-{env.setting}")


def _table(env: Env, name: str) -> str:
    return f"corpus_{name}_{env.setting}_{env.token}"


SCAN_FACTS = r"^Scan parquet .*facts"
SCAN_DIM = r"^Scan parquet .*dim"
SCAN_PARTS = r"^Scan parquet .*parts"
JOIN = r"^\w*Join "


CASES: tuple[Case, ...] = (
    # count(): the rows that fed count(1), not an operator below the user's own aggregates
    Case("count-filter", "count", lambda e: e.facts.filter("v >= 100").count(), _value,
         (Check(r"^Filter ", lambda e: e.facts.filter("v >= 100")),
          Check(SCAN_FACTS, lambda e: e.facts))),
    Case("count-dedup", "count", lambda e: e.facts.dropDuplicates(["k"]).count(), _value,
         (Check(r"^HashAggregate .*keys=\[k", lambda e: e.facts.dropDuplicates(["k"])),
          Check(SCAN_FACTS, lambda e: e.facts))),
    Case("count-distinct", "count", lambda e: e.facts.select("g").distinct().count(), _value,
         (Check(r"^HashAggregate .*keys=\[g", lambda e: e.facts.select("g").distinct()),)),
    Case("count-groupby", "count", lambda e: e.facts.groupBy("k").count().count(), _value,
         (Check(r"^HashAggregate .*keys=\[k", lambda e: e.facts.groupBy("k").count()),)),
    Case("count-limit", "count", lambda e: e.facts.limit(25).count(), _value,
         (Check(r"^GlobalLimit ", lambda e: e.facts.limit(25)),), cut=(SCAN_FACTS,)),
    Case("count-limit-range", "count", lambda e: e.mem.limit(25).count(), _value,
         (Check(r"^GlobalLimit ", lambda e: e.mem.limit(25)),), cut=(r"^Range ",)),
    Case("count-union", "count",
         lambda e: e.facts.filter("v < 100").union(e.facts.filter("v >= 900")).count(), _value,
         (Check(r"^Union", lambda e: e.facts.filter("v < 100").union(e.facts.filter("v >= 900"))),)),
    Case("count-explode", "count",
         lambda e: e.mem.select(F.explode(F.array("id", F.col("id") + 1)).alias("x")).count(),
         _value,
         (Check(r"^Generate ", lambda e: e.mem.select(F.explode(F.array("id", F.col("id") + 1)))),)),
    Case("count-sample", "count", lambda e: e.facts.sample(fraction=0.1, seed=7).count(), _value,
         (Check(r"^Sample ", lambda e: e.facts.sample(fraction=0.1, seed=7)),)),
    Case("count-semi-join", "count", lambda e: e.facts.join(e.dim, "k", "left_semi").count(),
         _value, (Check(JOIN, lambda e: e.facts.join(e.dim, "k", "left_semi")),)),
    Case("count-anti-join", "count", lambda e: e.facts.join(e.dim, "k", "left_anti").count(),
         _value, (Check(JOIN, lambda e: e.facts.join(e.dim, "k", "left_anti")),)),
    Case("count-broadcast-join", "count", lambda e: e.facts.join(F.broadcast(e.dim), "k").count(),
         _value,
         (Check(JOIN, lambda e: e.facts.join(e.dim, "k"),
                rows_in=(lambda e: e.facts, lambda e: e.dim)),
          Check(SCAN_DIM, lambda e: e.dim))),
    Case("count-sort-merge-join", "count", lambda e: e.facts.join(e.dim, "k").count(), _value,
         (Check(JOIN, lambda e: e.facts.join(e.dim, "k"),
                rows_in=(lambda e: e.facts, lambda e: e.dim)),),
         conf={"spark.sql.autoBroadcastJoinThreshold": "-1",
               "spark.sql.adaptive.autoBroadcastJoinThreshold": "-1"}),
    Case("count-cache-fill", "count", _fill_cache, _value,
         (Check(r"^InMemoryTableScan ", lambda e: e.facts.filter("g = 3")),)),
    Case("count-cache-hit", "count", lambda e: e.cached.count(), _value,
         (Check(r"^InMemoryTableScan ", lambda e: e.facts.filter("g = 3")),)),
    Case("count-pushed-down-to-parquet", "count",
         lambda e: e.spark.read.parquet(e.facts_path).count(), _value,
         conf={"spark.sql.sources.useV1SourceList": "",
               "spark.sql.parquet.aggregatePushdown": "true"},
         null_rows="count(): the plan has no count(1) aggregate"),
    # a partition filter that matches no directory: the scan lists no file and its stage has no
    # task to run; every operator of that stage produced 0 rows (not "skipped")
    Case("count-no-partition-matches", "count", lambda e: e.parts.filter("g = 99").count(),
         _value, (Check(SCAN_PARTS, lambda e: e.parts.filter("g = 99")),)),
    Case("count-union-one-side-pruned", "count",
         lambda e: e.parts.filter("g = 99").union(e.parts.filter("g = 4")).count(), _value,
         (Check(r"^Union", lambda e: e.parts.filter("g = 99").union(e.parts.filter("g = 4"))),
          Check(SCAN_PARTS, lambda e: e.parts.filter("g = 99")))),
    Case("count-broadcast-join-pruned-stream", "count",
         lambda e: e.parts.filter("g = 99").join(F.broadcast(e.dim), "k").count(), _value,
         (Check(JOIN, lambda e: e.parts.filter("g = 99").join(e.dim, "k"),
                rows_in=(lambda e: e.parts.filter("g = 99"), lambda e: e.dim)),)),
    # collect and friends: the rows the root handed back
    Case("collect-no-partition-matches", "collect",
         lambda e: e.parts.filter("g = 99").collect(), _len,
         (Check(SCAN_PARTS, lambda e: e.parts.filter("g = 99")),)),
    Case("collect-filter", "collect", lambda e: e.facts.filter("v < 7").collect(), _len,
         (Check(r"^Filter ", lambda e: e.facts.filter("v < 7")), Check(SCAN_FACTS, lambda e: e.facts))),
    Case("collect-offset", "collect", lambda e: e.facts.filter("v >= 8").offset(40).collect(),
         _len, (Check(r"^Filter ", lambda e: e.facts.filter("v >= 8")),)),
    # collect() of a DataFrame that ends in limit(n) is take(n): the same plan, the same action
    Case("collect-limit", "take", lambda e: e.facts.limit(10).collect(), _len,
         cut=(SCAN_FACTS,)),
    Case("collect-limit-offset", "collect", lambda e: e.facts.limit(12).offset(5).collect(), _len),
    Case("collect-global-sort", "collect", lambda e: e.facts.orderBy("v").collect(), _len,
         (Check(SCAN_FACTS, lambda e: e.facts),)),
    Case("collect-top-k", "take", lambda e: e.facts.orderBy("v").limit(7).collect(), _len,
         (Check(SCAN_FACTS, lambda e: e.facts),)),
    Case("collect-top-k-offset", "take",
         lambda e: e.facts.orderBy("v").offset(5).limit(7).collect(), _len,
         (Check(SCAN_FACTS, lambda e: e.facts),)),
    Case("collect-agg-sorted", "collect", lambda e: _agg(e).orderBy("s").collect(), _len,
         (Check(r"^HashAggregate .*keys=\[k", _agg), Check(SCAN_FACTS, lambda e: e.facts))),
    Case("collect-agg-filter-sorted", "collect",
         lambda e: _agg(e).filter(F.col("s") > 154_000).orderBy("s").collect(), _len,
         (Check(r"^Filter ", lambda e: _agg(e).filter(F.col("s") > 154_000)),
          Check(r"^HashAggregate .*keys=\[k", _agg))),
    Case("collect-join-sorted", "collect",
         lambda e: e.facts.filter("v < 900").join(e.dim, "k").orderBy("id").collect(), _len,
         (Check(JOIN, lambda e: e.facts.filter("v < 900").join(e.dim, "k"),
                rows_in=(lambda e: e.facts.filter("v < 900"), lambda e: e.dim)),
          Check(r"^Filter .*v#\w+ < 900", lambda e: e.facts.filter("v < 900")),
          Check(SCAN_FACTS, lambda e: e.facts))),
    Case("collect-union", "collect",
         lambda e: e.mem.filter("id < 10").union(e.mem.filter("id >= 29990")).collect(), _len,
         (Check(r"^Union", lambda e: e.mem.filter("id < 10").union(e.mem.filter("id >= 29990"))),)),
    Case("collect-intersect", "collect",
         lambda e: e.facts.select("k").intersect(e.dim.select("k")).collect(), _len),
    Case("collect-except", "collect",
         lambda e: e.facts.select("k").subtract(e.dim.select("k")).collect(), _len),
    Case("collect-window-filter", "collect", lambda e: _ranked(e).filter("rn <= 3").collect(), _len,
         (Check(r"^Filter .*rn", lambda e: _ranked(e).filter("rn <= 3")),
          Check(SCAN_FACTS, lambda e: e.facts))),
    Case("toPandas-agg-sorted", "toPandas",
         lambda e: e.facts.groupBy("g").agg(F.sum("v").alias("s")).orderBy("g").toPandas(), _len,
         (Check(r"^HashAggregate .*keys=\[g", lambda e: e.facts.groupBy("g").count()),)),
    # classic tail(n) runs the plan's last partitions outside any operator that knows n
    Case("tail", "tail", lambda e: e.facts.filter("v < 50").tail(3), _len,
         cut=(r"^Filter ", SCAN_FACTS), null_rows="tail(n): Spark passes n"),
    Case("first", "take", lambda e: e.facts.first(), lambda r, e: 1, cut=(SCAN_FACTS,)),
    Case("head-n", "take", lambda e: e.facts.head(5), _len, cut=(SCAN_FACTS,)),
    Case("take-filtered", "take", lambda e: e.facts.filter("g = 2").take(7), _len),
    Case("isEmpty-empty", "isEmpty", lambda e: e.facts.filter("v > 5000").isEmpty(),
         lambda r, e: 0 if r else 1, (Check(r"^Filter ", lambda e: e.facts.filter("v > 5000")),)),
    Case("isEmpty-not-empty", "isEmpty", lambda e: e.facts.isEmpty(), lambda r, e: 0 if r else 1),
    Case("show-5-of-97", "show", lambda e: e.facts.groupBy("k").count().show(5),
         lambda r, e: 5),
    Case("show-50-of-13", "show", lambda e: e.facts.groupBy("g").count().show(50),
         lambda r, e: 13,
         (Check(r"^HashAggregate .*keys=\[g", lambda e: e.facts.groupBy("g").count()),)),
    # writes: the rows the written files hold
    Case("write-sorted", "write",
         lambda e: e.facts.orderBy("v").write.parquet(_written(e, "sorted")),
         lambda r, e: e.spark.read.parquet(_written(e, "sorted")).count(),
         (Check(SCAN_FACTS, lambda e: e.facts),)),
    Case("write-limited-json", "write",
         lambda e: e.facts.limit(10).write.json(_written(e, "limited")),
         lambda r, e: e.spark.read.json(_written(e, "limited")).count()),
    Case("sql-insert-select", "write",
         lambda e: e.spark.sql(f"INSERT INTO {_table(e, 'ins')} SELECT k, v FROM "
                               f"parquet.`{e.facts_path}` WHERE g = 5"),
         lambda r, e: e.spark.table(_table(e, "ins")).count(),
         setup=lambda e: e.spark.sql(
             f"CREATE TABLE {_table(e, 'ins')} (k BIGINT, v BIGINT) USING parquet")),
    Case("sql-ctas", "write",
         lambda e: e.spark.sql(f"CREATE TABLE {_table(e, 'ctas')} USING parquet AS SELECT g, "
                               f"count(*) AS c FROM parquet.`{e.facts_path}` GROUP BY g"),
         lambda r, e: e.spark.table(_table(e, "ctas")).count()),
)

# The settings every case runs under: adaptive execution on and off, 1, 7 and 200 partitions.
SETTINGS: tuple[tuple[bool, int], ...] = tuple(
    (aqe, parts) for aqe in (True, False) for parts in (1, 7, 200))
