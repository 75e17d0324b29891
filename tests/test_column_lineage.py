"""Column lineage (issue 12 item 5) against a real local Spark session: each step's recorded
``column_lineage`` is compared with what the test knows of the pipeline it wrote, per output
column; the audit query follows a final column back through an intermediate parquet file."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

import pipetrace
from pipetrace.audit import query_text

# (output column or None for a row-level entry, input, input column or None, how)
Entry = tuple[Any, Any, Any, str]
ORD, CUS = "orders", "customers"  # stand-ins for the inputs' recorded names, resolved per run


@dataclass
class Pipeline:
    """The captured run: its steps by case name, and the inputs' names as Spark spells them."""

    steps: dict[str, dict[str, Any]]
    names: dict[str, str]
    table: str
    run_id: str
    final_table: str
    mid: str


def _write_inputs(spark: Any, root: Path) -> dict[str, str]:
    orders = spark.createDataFrame(
        [(i, i % 5, float(i * 3 % 40), ["n", "s", "e"][i % 3], float(i % 7)) for i in range(60)],
        "order_id long, customer_id long, amount double, region string, credit double")
    customers = spark.createDataFrame(
        [(c, f"c{c}", "retail" if c % 2 else "corp", float(c * 4)) for c in range(5)],
        "customer_id long, name string, segment string, credit double")
    names = {}
    for name, df in ((ORD, orders), (CUS, customers)):
        path = root / name
        df.write.parquet(str(path))
        names[name] = "file:" + str(path)  # how Spark names a local path it reads
    return names


def _cases(final_table: str, mid: str) -> list[tuple[str, Callable[[Any, Any, Any], Any]]]:
    """(case, action): each action is one step; run in this order."""
    def rank(o: Any, c: Any, s: Any) -> Any:
        w = Window.partitionBy("region").orderBy(F.desc("amount"))
        return o.withColumn("rank", F.rank().over(w)).select("order_id", "rank").collect()

    def merged(o: Any, c: Any, s: Any) -> Any:
        # The filter names both sides: the optimizer merges it into the join's condition.
        return (o.join(c, "customer_id").filter(o.amount > c.credit)
                .select("order_id", c.name).collect())

    def chain_write(o: Any, c: Any, s: Any) -> Any:
        return (o.filter(F.col("amount") > 10)
                .select("order_id", "customer_id", (F.col("amount") * 1.1).alias("gross"))
                .write.parquet(mid))

    def chain_table(o: Any, c: Any, s: Any) -> Any:
        return (s.read.parquet(mid).join(c, "customer_id").groupBy("segment")
                .agg(F.sum("gross").alias("revenue")).write.saveAsTable(final_table))

    def cte(o: Any, c: Any, s: Any) -> Any:
        o.createOrReplaceTempView("lineage_orders")
        return s.sql("WITH big AS (SELECT order_id, amount FROM lineage_orders WHERE amount > 5) "
                     "SELECT order_id, amount * 2 AS doubled FROM big").collect()

    def subquery(o: Any, c: Any, s: Any) -> Any:
        o.createOrReplaceTempView("lineage_orders")
        c.createOrReplaceTempView("lineage_customers")
        return s.sql("SELECT order_id FROM lineage_orders WHERE customer_id IN "
                     "(SELECT customer_id FROM lineage_customers WHERE segment = 'corp')").collect()

    return [
        ("select", lambda o, c, s: o.select(F.col("order_id").alias("oid"), "amount").collect()),
        ("with_column", lambda o, c, s: o.withColumn("amount2", F.col("amount") * 2 + F.col(
            "order_id")).select("order_id", "amount2").toPandas()),
        ("group_by", lambda o, c, s: o.groupBy("region").agg(
            F.sum("amount").alias("total"), F.count("*").alias("n")).collect()),
        ("window", rank),
        ("join_using", lambda o, c, s: o.join(c, "customer_id")
         .select("customer_id", "amount", "name").collect()),
        ("join_on", lambda o, c, s: o.join(c, o.customer_id == c.customer_id)
         .select(o.order_id, c.segment).take(3)),
        ("filter", lambda o, c, s: o.filter(F.col("amount") > 10).select("order_id").collect()),
        ("union", lambda o, c, s: o.select("customer_id").union(c.select("customer_id"))
         .collect()),
        ("count", lambda o, c, s: o.filter("amount > 10").count()),
        ("show", lambda o, c, s: o.select("order_id", "region").show(3)),
        ("merged", merged),
        ("explode", lambda o, c, s: o.select(
            "order_id", F.explode(F.array("amount", "credit")).alias("value")).collect()),
        ("cte", cte),
        ("sort_take", lambda o, c, s: o.orderBy(F.desc("amount")).select("order_id").take(2)),
        ("dedup", lambda o, c, s: o.dropDuplicates(["region"]).select("region", "amount")
         .collect()),
        ("subquery", subquery),
        ("chain_write", chain_write),
        ("chain_table", chain_table),
    ]


def _run(spark: Any, root: Path, aqe: bool) -> Pipeline:
    names = _write_inputs(spark, root)
    final_table = f"lineage_{uuid.uuid4().hex[:8]}"
    mid = str(root / "mid")
    table = str(root / "pipeline_steps")
    run_id = f"lineage-{uuid.uuid4().hex[:8]}"
    spark.conf.set("spark.sql.adaptive.enabled", str(aqe).lower())
    cases = _cases(final_table, mid)
    try:
        with pipetrace.attach(spark, table=table, spool=str(root / "spool"), run_id=run_id) as t:
            orders = spark.read.parquet(names[ORD])
            customers = spark.read.parquet(names[CUS])
            for _, action in cases:
                action(orders, customers, spark)
            t.flush()
            rows = [s.to_dict() for _, s in t.steps().sort_values("seq").iterrows()]
    finally:
        spark.conf.unset("spark.sql.adaptive.enabled")
    # The CTE case's createOrReplaceTempView is a command step of its own: not a case.
    rows = [r for r in rows if r["action"] != "command"]
    assert len(rows) == len(cases), [r["action"] for r in rows]
    names["mid"] = "file:" + mid
    return Pipeline({name: row for (name, _), row in zip(cases, rows, strict=True)}, names, table, run_id,
                    final_table, mid)


@pytest.fixture(scope="module", params=[True, False], ids=["aqe", "no-aqe"])
def pipeline(spark_session: Any, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Pipeline:
    return _run(spark_session, tmp_path_factory.mktemp("lineage"), request.param)


def _entries(step: dict[str, Any]) -> set[Entry]:
    return {(e["column"], e["input"], e["input_column"], e["how"])
            for e in step["column_lineage"]}


def _named(p: Pipeline, entries: set[Entry]) -> set[Entry]:
    return {(col, p.names.get(i, i), ic, how) for col, i, ic, how in entries}


# The truth per case: every output column's origins, and the row-level entries (column None).
TRUTH: dict[str, set[Entry]] = {
    "select": {("oid", ORD, "order_id", "direct"), ("amount", ORD, "amount", "direct")},
    "with_column": {("order_id", ORD, "order_id", "direct"), ("amount2", ORD, "amount", "expression"),
                    ("amount2", ORD, "order_id", "expression")},
    "group_by": {("region", ORD, "region", "direct"), ("total", ORD, "amount", "aggregate"),
                 ("n", ORD, None, "aggregate"), (None, ORD, "region", "group_by")},
    "window": {("order_id", ORD, "order_id", "direct"), ("rank", ORD, "region", "window"),
               ("rank", ORD, "amount", "window")},
    "join_using": {("customer_id", ORD, "customer_id", "direct"), ("amount", ORD, "amount", "direct"),
                   ("name", CUS, "name", "direct"), (None, ORD, "customer_id", "join_key"),
                   (None, CUS, "customer_id", "join_key")},
    "join_on": {("order_id", ORD, "order_id", "direct"), ("segment", CUS, "segment", "direct"),
                (None, ORD, "customer_id", "join_key"), (None, CUS, "customer_id", "join_key")},
    "filter": {("order_id", ORD, "order_id", "direct"), (None, ORD, "amount", "filter")},
    "union": {("customer_id", ORD, "customer_id", "direct"),
              ("customer_id", CUS, "customer_id", "direct")},
    "count": {("count", ORD, None, "aggregate"), (None, ORD, "amount", "filter")},
    "show": {("order_id", ORD, "order_id", "direct"), ("region", ORD, "region", "direct")},
    "merged": {("order_id", ORD, "order_id", "direct"), ("name", CUS, "name", "direct"),
               (None, ORD, "customer_id", "join_key"), (None, CUS, "customer_id", "join_key"),
               (None, ORD, "amount", "filter"), (None, CUS, "credit", "filter")},
    "explode": {("order_id", ORD, "order_id", "direct"), ("value", ORD, "amount", "expression"),
                ("value", ORD, "credit", "expression")},
    "cte": {("order_id", ORD, "order_id", "direct"), ("doubled", ORD, "amount", "expression"),
            (None, ORD, "amount", "filter")},
    "sort_take": {("order_id", ORD, "order_id", "direct"), (None, ORD, "amount", "sort")},
    "dedup": {("region", ORD, "region", "direct"), ("amount", ORD, "amount", "direct"),
              (None, ORD, "region", "group_by")},
    "subquery": {("order_id", ORD, "order_id", "direct"), (None, ORD, "customer_id", "filter"),
                 (None, CUS, "customer_id", "filter"), (None, CUS, "segment", "filter")},
    "chain_write": {("order_id", ORD, "order_id", "direct"),
                    ("customer_id", ORD, "customer_id", "direct"),
                    ("gross", ORD, "amount", "expression"), (None, ORD, "amount", "filter")},
    "chain_table": {("segment", CUS, "segment", "direct"), ("revenue", "mid", "gross", "aggregate"),
                    (None, "mid", "customer_id", "join_key"), (None, CUS, "customer_id", "join_key"),
                    (None, CUS, "segment", "group_by")},
}


@pytest.mark.parametrize("case", sorted(TRUTH))
def test_each_columns_lineage_is_true(pipeline: Pipeline, case: str) -> None:
    step = pipeline.steps[case]
    assert _entries(step) == _named(pipeline, TRUTH[case]), step["capture_warnings"]
    assert not [w for w in step["capture_warnings"] if "column_lineage" in w]
    # Every input named by the lineage is one of the step's inputs, by the very same name.
    recorded = {(i["name"], i["kind"]) for i in step["inputs"]}
    assert {(e["input"], e["input_kind"]) for e in step["column_lineage"]} <= recorded


def test_output_columns_come_in_output_order(pipeline: Pipeline) -> None:
    step = pipeline.steps["join_using"]
    columns = [e["column"] for e in step["column_lineage"]]
    assert columns == ["customer_id", "amount", "name", None, None]


def test_the_merged_filter_was_merged_by_the_optimizer(pipeline: Pipeline) -> None:
    # The premise of the "merged" case: the optimized plan has no Filter of amount > credit
    # of its own; the lineage above still names it as the agent's filter.
    optimized = pipeline.steps["merged"]["optimized_plan"]
    join = next(line for line in optimized.splitlines() if "Join Inner" in line)
    assert "amount" in join and "credit" in join, optimized


def test_the_readme_query_lists_every_entry(pipeline: Pipeline) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    query = readme.split("-- pipetrace sql: every output column of a run's steps")[1]
    query = query.split("\n", 1)[1].split("```")[0].replace("RUN_ID", pipeline.run_id)
    rows = pipetrace.sql(query, table=pipeline.table).to_pylist()
    recorded = [(s["seq"], e["column"], e["input"], e["input_column"], e["how"])
                for s in pipeline.steps.values() for e in s["column_lineage"]]
    assert sorted(map(str, (tuple(r.values()) for r in rows))) == sorted(map(str, recorded))


def _final_name(p: Pipeline) -> str:
    # The name the table's step recorded (one name per table is issue 12 item 6's concern).
    name = p.steps["chain_table"]["output"]["name"]
    assert name.endswith(p.final_table)
    return name


def _audit(p: Pipeline, column: str) -> list[dict[str, Any]]:
    output = _final_name(p)
    done = subprocess.run([sys.executable, "-m", "pipetrace", "audit", "column-lineage",
                           "--table", p.table, "--run-id", p.run_id, "--output", output,
                           "--column", column, "--format", "json"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _originals(rows: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(r["input"], r["input_column"], r["how"]) for r in rows
            if r["written_by_seq"] is None}


def test_audit_follows_a_column_back_through_the_intermediate_file(pipeline: Pipeline) -> None:
    rows = _audit(pipeline, "revenue")
    n = pipeline.names
    seq_write, seq_table = (pipeline.steps[k]["seq"] for k in ("chain_write", "chain_table"))
    # revenue = sum(gross) over mid joined to customers by customer_id, grouped by segment;
    # mid.gross = orders.amount * 1.1 where orders.amount > 10; mid.customer_id = orders'.
    assert {(r["depth"], r["seq"], r["output_column"], r["input"], r["input_column"], r["how"],
             r["written_by_seq"]) for r in rows} == {
        (0, seq_table, "revenue", n["mid"], "gross", "aggregate", seq_write),
        (0, seq_table, None, n["mid"], "customer_id", "join_key", seq_write),
        (0, seq_table, None, n[CUS], "customer_id", "join_key", None),
        (0, seq_table, None, n[CUS], "segment", "group_by", None),
        (1, seq_write, "gross", n[ORD], "amount", "expression", None),
        (1, seq_write, "customer_id", n[ORD], "customer_id", "direct", None),
        (1, seq_write, None, n[ORD], "amount", "filter", None),
    }
    assert _originals(rows) == {(n[ORD], "amount", "expression"), (n[ORD], "amount", "filter"),
                                (n[ORD], "customer_id", "direct"),
                                (n[CUS], "customer_id", "join_key"), (n[CUS], "segment", "group_by")}


def test_the_spark_sql_audit_query_gives_the_same_rows(pipeline: Pipeline,
                                                       spark_session: Any) -> None:
    """The shipped Databricks-dialect SQL, run by Spark itself over the table's files."""
    spark = spark_session
    if tuple(int(x) for x in spark.version.split(".")[:2]) < (4, 1):
        pytest.skip(f"Spark {spark.version} has no WITH RECURSIVE (4.1+, DBR 17); the shipped "
                    "file says it needs it; its DataFusion twin is tested whatever the Spark")
    # delta-rs only appends to this table: its parquet files are exactly its rows.
    spark.read.parquet(pipeline.table).createOrReplaceTempView("lineage_steps")
    text = "\n".join(line for line in query_text("column-lineage").splitlines()
                     if not line.lstrip().startswith("--"))
    got = spark.sql(text, args={"steps_table": "lineage_steps", "run_id": pipeline.run_id,
                                "output": _final_name(pipeline),
                                "column": "revenue"}).collect()
    expected = _audit(pipeline, "revenue")
    assert [r.asDict() for r in got] == expected


def _one_step(trace: Any, action: Callable[[], Any]) -> dict[str, Any]:
    action()
    trace.flush()
    return trace.steps().sort_values("seq").iloc[-1].to_dict()


def test_a_column_no_rule_follows_is_named_in_a_warning(spark: Any, trace: Any) -> None:
    df = spark.range(10).withColumn("g", F.col("id") % 3)
    step = _one_step(trace, lambda: df.mapInPandas(lambda it: it, df.schema)
                     .select("id", (F.col("g") + 1).alias("g1")).collect())
    # mapInPandas' Python function is opaque: its columns have no entries, and the warning
    # names each output column computed from them.
    assert _entries(step) == set()
    (warning,) = [w for w in step["capture_warnings"] if "column_lineage" in w]
    assert "id (MapInPandas not followed)" in warning and "g1 (MapInPandas" in warning


def test_entries_are_capped_with_a_warning(spark: Any, trace: Any) -> None:
    wide = spark.range(1).select([F.col("id").alias(f"c{i}") for i in range(2_100)])
    step = _one_step(trace, wide.collect)
    assert len(step["column_lineage"]) == 2_000
    assert [e["column"] for e in step["column_lineage"][:3]] == ["c0", "c1", "c2"]
    assert "column_lineage: 100 of 2100 entries left out (at most 2000 per step)" in \
        step["capture_warnings"]


def test_a_command_that_computes_nothing_has_no_entries(spark: Any, trace: Any,
                                                        unique: str) -> None:
    step = _one_step(trace, lambda: spark.sql(f"CREATE TABLE {unique} (id BIGINT) USING parquet"))
    assert step["action"] == "command"
    assert list(step["column_lineage"]) == []


def test_local_data_is_named_by_its_kind(spark: Any, trace: Any, tmp_path: Path) -> None:
    step = _one_step(trace, lambda: spark.sql("SELECT * FROM VALUES (1, 'a') AS t(n, s)")
                     .selectExpr("n + 1 AS n1").write.parquet(str(tmp_path / "local")))
    assert [(i["kind"], i["name"]) for i in step["inputs"]] == [("local", None)]
    assert [(e["column"], e["input"], e["input_kind"], e["input_column"], e["how"])
            for e in step["column_lineage"]] == [("n1", None, "local", "n", "expression")]
