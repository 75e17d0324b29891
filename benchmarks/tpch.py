"""TPC-H: local data generation (tpchgen-cli) and the 22 queries written with the DataFrame API.

The queries follow the TPC-H specification's default substitution parameters (the same
constants as the reference answers). Each function takes a dict of DataFrames, one per table,
and returns the query's DataFrame; the benchmark collects it.

Example::

    >>> tables = load_tables(spark, generate(Path("/tmp/tpch"), scale=0.01))  # doctest: +SKIP
    >>> QUERIES[0](tables).collect()[0]["l_returnflag"]  # doctest: +SKIP
    'A'
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

__all__ = ["QUERIES", "TABLES", "generate", "load_tables"]

TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")
Tables = dict[str, DataFrame]


def generate(root: Path, scale: float) -> Path:
    """Generate the 8 TPC-H tables as parquet under ``root/sf<scale>`` once; return that dir."""
    out = root / f"sf{scale:g}"
    if all((out / f"{t}.parquet").is_file() for t in TABLES):
        return out
    exe = shutil.which("tpchgen-cli")
    if exe is None:
        raise RuntimeError("tpchgen-cli is not installed: `pip install tpchgen-cli`")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "parquet", "-s", f"{scale:g}", f"--output-dir={out}"], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def load_tables(spark: Any, data: Path) -> Tables:
    """One DataFrame per table, read from the generated parquet files."""
    return {t: spark.read.parquet(str(data / f"{t}.parquet")) for t in TABLES}


def _d(text: str) -> Any:
    return F.lit(date.fromisoformat(text))


def _rev() -> Any:
    return F.col("l_extendedprice") * (1 - F.col("l_discount"))


def q1(t: Tables) -> DataFrame:
    return (t["lineitem"].filter(F.col("l_shipdate") <= F.date_sub(_d("1998-12-01"), 90))
            .groupBy("l_returnflag", "l_linestatus")
            .agg(F.sum("l_quantity").alias("sum_qty"),
                 F.sum("l_extendedprice").alias("sum_base_price"),
                 F.sum(_rev()).alias("sum_disc_price"),
                 F.sum(_rev() * (1 + F.col("l_tax"))).alias("sum_charge"),
                 F.avg("l_quantity").alias("avg_qty"), F.avg("l_extendedprice").alias("avg_price"),
                 F.avg("l_discount").alias("avg_disc"), F.count("*").alias("count_order"))
            .orderBy("l_returnflag", "l_linestatus"))


def _europe_partsupp(t: Tables) -> DataFrame:
    return (t["partsupp"].join(t["supplier"], F.col("ps_suppkey") == F.col("s_suppkey"))
            .join(t["nation"], F.col("s_nationkey") == F.col("n_nationkey"))
            .join(t["region"].filter(F.col("r_name") == "EUROPE"),
                  F.col("n_regionkey") == F.col("r_regionkey")))


def q2(t: Tables) -> DataFrame:
    eu = _europe_partsupp(t)
    min_cost = eu.groupBy(F.col("ps_partkey").alias("m_partkey")).agg(
        F.min("ps_supplycost").alias("min_cost"))
    parts = t["part"].filter((F.col("p_size") == 15) & F.col("p_type").endswith("BRASS"))
    return (eu.join(parts, F.col("ps_partkey") == F.col("p_partkey"))
            .join(min_cost, (F.col("ps_partkey") == F.col("m_partkey"))
                  & (F.col("ps_supplycost") == F.col("min_cost")))
            .select("s_acctbal", "s_name", "n_name", "p_partkey", "p_mfgr", "s_address",
                    "s_phone", "s_comment")
            .orderBy(F.desc("s_acctbal"), "n_name", "s_name", "p_partkey").limit(100))


def q3(t: Tables) -> DataFrame:
    return (t["customer"].filter(F.col("c_mktsegment") == "BUILDING")
            .join(t["orders"].filter(F.col("o_orderdate") < _d("1995-03-15")),
                  F.col("c_custkey") == F.col("o_custkey"))
            .join(t["lineitem"].filter(F.col("l_shipdate") > _d("1995-03-15")),
                  F.col("l_orderkey") == F.col("o_orderkey"))
            .groupBy("l_orderkey", "o_orderdate", "o_shippriority")
            .agg(F.sum(_rev()).alias("revenue"))
            .orderBy(F.desc("revenue"), "o_orderdate").limit(10))


def q4(t: Tables) -> DataFrame:
    late = t["lineitem"].filter(F.col("l_commitdate") < F.col("l_receiptdate"))
    return (t["orders"].filter((F.col("o_orderdate") >= _d("1993-07-01"))
                               & (F.col("o_orderdate") < _d("1993-10-01")))
            .join(late, F.col("o_orderkey") == F.col("l_orderkey"), "left_semi")
            .groupBy("o_orderpriority").agg(F.count("*").alias("order_count"))
            .orderBy("o_orderpriority"))


def q5(t: Tables) -> DataFrame:
    return (t["customer"].join(t["orders"], F.col("c_custkey") == F.col("o_custkey"))
            .filter((F.col("o_orderdate") >= _d("1994-01-01"))
                    & (F.col("o_orderdate") < _d("1995-01-01")))
            .join(t["lineitem"], F.col("l_orderkey") == F.col("o_orderkey"))
            .join(t["supplier"], (F.col("l_suppkey") == F.col("s_suppkey"))
                  & (F.col("c_nationkey") == F.col("s_nationkey")))
            .join(t["nation"], F.col("s_nationkey") == F.col("n_nationkey"))
            .join(t["region"].filter(F.col("r_name") == "ASIA"),
                  F.col("n_regionkey") == F.col("r_regionkey"))
            .groupBy("n_name").agg(F.sum(_rev()).alias("revenue")).orderBy(F.desc("revenue")))


def q6(t: Tables) -> DataFrame:
    return (t["lineitem"].filter((F.col("l_shipdate") >= _d("1994-01-01"))
                                 & (F.col("l_shipdate") < _d("1995-01-01"))
                                 & F.col("l_discount").between(0.05, 0.07)
                                 & (F.col("l_quantity") < 24))
            .agg(F.sum(F.col("l_extendedprice") * F.col("l_discount")).alias("revenue")))


def q7(t: Tables) -> DataFrame:
    n1 = t["nation"].select(F.col("n_nationkey").alias("n1_key"),
                            F.col("n_name").alias("supp_nation"))
    n2 = t["nation"].select(F.col("n_nationkey").alias("n2_key"),
                            F.col("n_name").alias("cust_nation"))
    pair = (((F.col("supp_nation") == "FRANCE") & (F.col("cust_nation") == "GERMANY"))
            | ((F.col("supp_nation") == "GERMANY") & (F.col("cust_nation") == "FRANCE")))
    return (t["lineitem"].filter(F.col("l_shipdate").between(_d("1995-01-01"), _d("1996-12-31")))
            .join(t["supplier"], F.col("s_suppkey") == F.col("l_suppkey"))
            .join(t["orders"], F.col("o_orderkey") == F.col("l_orderkey"))
            .join(t["customer"], F.col("c_custkey") == F.col("o_custkey"))
            .join(n1, F.col("s_nationkey") == F.col("n1_key"))
            .join(n2, F.col("c_nationkey") == F.col("n2_key")).filter(pair)
            .withColumn("l_year", F.year("l_shipdate")).withColumn("volume", _rev())
            .groupBy("supp_nation", "cust_nation", "l_year").agg(F.sum("volume").alias("revenue"))
            .orderBy("supp_nation", "cust_nation", "l_year"))


def q8(t: Tables) -> DataFrame:
    n2 = t["nation"].select(F.col("n_nationkey").alias("n2_key"), F.col("n_name").alias("nation"))
    return (t["part"].filter(F.col("p_type") == "ECONOMY ANODIZED STEEL")
            .join(t["lineitem"], F.col("p_partkey") == F.col("l_partkey"))
            .join(t["supplier"], F.col("s_suppkey") == F.col("l_suppkey"))
            .join(t["orders"].filter(F.col("o_orderdate").between(_d("1995-01-01"),
                                                                  _d("1996-12-31"))),
                  F.col("l_orderkey") == F.col("o_orderkey"))
            .join(t["customer"], F.col("o_custkey") == F.col("c_custkey"))
            .join(t["nation"], F.col("c_nationkey") == F.col("n_nationkey"))
            .join(t["region"].filter(F.col("r_name") == "AMERICA"),
                  F.col("n_regionkey") == F.col("r_regionkey"))
            .join(n2, F.col("s_nationkey") == F.col("n2_key"))
            .withColumn("o_year", F.year("o_orderdate")).withColumn("volume", _rev())
            .groupBy("o_year")
            .agg((F.sum(F.when(F.col("nation") == "BRAZIL", F.col("volume")).otherwise(0))
                  / F.sum("volume")).alias("mkt_share"))
            .orderBy("o_year"))


def q9(t: Tables) -> DataFrame:
    return (t["part"].filter(F.col("p_name").contains("green"))
            .join(t["lineitem"], F.col("p_partkey") == F.col("l_partkey"))
            .join(t["supplier"], F.col("s_suppkey") == F.col("l_suppkey"))
            .join(t["partsupp"], (F.col("ps_suppkey") == F.col("l_suppkey"))
                  & (F.col("ps_partkey") == F.col("l_partkey")))
            .join(t["orders"], F.col("o_orderkey") == F.col("l_orderkey"))
            .join(t["nation"], F.col("s_nationkey") == F.col("n_nationkey"))
            .select(F.col("n_name").alias("nation"), F.year("o_orderdate").alias("o_year"),
                    (_rev() - F.col("ps_supplycost") * F.col("l_quantity")).alias("amount"))
            .groupBy("nation", "o_year").agg(F.sum("amount").alias("sum_profit"))
            .orderBy("nation", F.desc("o_year")))


def q10(t: Tables) -> DataFrame:
    return (t["customer"]
            .join(t["orders"].filter((F.col("o_orderdate") >= _d("1993-10-01"))
                                     & (F.col("o_orderdate") < _d("1994-01-01"))),
                  F.col("c_custkey") == F.col("o_custkey"))
            .join(t["lineitem"].filter(F.col("l_returnflag") == "R"),
                  F.col("l_orderkey") == F.col("o_orderkey"))
            .join(t["nation"], F.col("c_nationkey") == F.col("n_nationkey"))
            .groupBy("c_custkey", "c_name", "c_acctbal", "c_phone", "n_name", "c_address",
                     "c_comment")
            .agg(F.sum(_rev()).alias("revenue")).orderBy(F.desc("revenue")).limit(20))


def q11(t: Tables) -> DataFrame:
    de = (t["partsupp"].join(t["supplier"], F.col("ps_suppkey") == F.col("s_suppkey"))
          .join(t["nation"].filter(F.col("n_name") == "GERMANY"),
                F.col("s_nationkey") == F.col("n_nationkey"))
          .withColumn("value", F.col("ps_supplycost") * F.col("ps_availqty")))
    total = de.agg((F.sum("value") * 0.0001).alias("threshold"))
    return (de.groupBy("ps_partkey").agg(F.sum("value").alias("value"))
            .crossJoin(total).filter(F.col("value") > F.col("threshold"))
            .select("ps_partkey", "value").orderBy(F.desc("value")))


def q12(t: Tables) -> DataFrame:
    high = F.col("o_orderpriority").isin("1-URGENT", "2-HIGH")
    return (t["lineitem"].filter(F.col("l_shipmode").isin("MAIL", "SHIP")
                                 & (F.col("l_commitdate") < F.col("l_receiptdate"))
                                 & (F.col("l_shipdate") < F.col("l_commitdate"))
                                 & (F.col("l_receiptdate") >= _d("1994-01-01"))
                                 & (F.col("l_receiptdate") < _d("1995-01-01")))
            .join(t["orders"], F.col("o_orderkey") == F.col("l_orderkey"))
            .groupBy("l_shipmode")
            .agg(F.sum(F.when(high, 1).otherwise(0)).alias("high_line_count"),
                 F.sum(F.when(~high, 1).otherwise(0)).alias("low_line_count"))
            .orderBy("l_shipmode"))


def q13(t: Tables) -> DataFrame:
    orders = t["orders"].filter(~F.col("o_comment").rlike(".*special.*requests.*"))
    return (t["customer"].join(orders, F.col("c_custkey") == F.col("o_custkey"), "left")
            .groupBy("c_custkey").agg(F.count("o_orderkey").alias("c_count"))
            .groupBy("c_count").agg(F.count("*").alias("custdist"))
            .orderBy(F.desc("custdist"), F.desc("c_count")))


def q14(t: Tables) -> DataFrame:
    return (t["lineitem"].filter((F.col("l_shipdate") >= _d("1995-09-01"))
                                 & (F.col("l_shipdate") < _d("1995-10-01")))
            .join(t["part"], F.col("l_partkey") == F.col("p_partkey"))
            .agg((100.0 * F.sum(F.when(F.col("p_type").startswith("PROMO"), _rev()).otherwise(0))
                  / F.sum(_rev())).alias("promo_revenue")))


def q15(t: Tables) -> DataFrame:
    revenue = (t["lineitem"].filter((F.col("l_shipdate") >= _d("1996-01-01"))
                                    & (F.col("l_shipdate") < _d("1996-04-01")))
               .groupBy(F.col("l_suppkey").alias("supplier_no"))
               .agg(F.sum(_rev()).alias("total_revenue")))
    top = revenue.agg(F.max("total_revenue").alias("max_revenue"))
    return (t["supplier"].join(revenue, F.col("s_suppkey") == F.col("supplier_no"))
            .join(top, F.col("total_revenue") == F.col("max_revenue"))
            .select("s_suppkey", "s_name", "s_address", "s_phone", "total_revenue")
            .orderBy("s_suppkey"))


def q16(t: Tables) -> DataFrame:
    complaints = t["supplier"].filter(F.col("s_comment").rlike(".*Customer.*Complaints.*"))
    return (t["partsupp"]
            .join(complaints, F.col("ps_suppkey") == F.col("s_suppkey"), "left_anti")
            .join(t["part"].filter((F.col("p_brand") != "Brand#45")
                                   & ~F.col("p_type").startswith("MEDIUM POLISHED")
                                   & F.col("p_size").isin(49, 14, 23, 45, 19, 3, 36, 9)),
                  F.col("p_partkey") == F.col("ps_partkey"))
            .groupBy("p_brand", "p_type", "p_size")
            .agg(F.countDistinct("ps_suppkey").alias("supplier_cnt"))
            .orderBy(F.desc("supplier_cnt"), "p_brand", "p_type", "p_size"))


def q17(t: Tables) -> DataFrame:
    parts = t["part"].filter((F.col("p_brand") == "Brand#23") & (F.col("p_container") == "MED BOX"))
    li = t["lineitem"].join(parts, F.col("l_partkey") == F.col("p_partkey"))
    avg_qty = li.groupBy(F.col("l_partkey").alias("a_partkey")).agg(
        (0.2 * F.avg("l_quantity")).alias("avg_qty"))
    return (li.join(avg_qty, F.col("l_partkey") == F.col("a_partkey"))
            .filter(F.col("l_quantity") < F.col("avg_qty"))
            .agg((F.sum("l_extendedprice") / 7.0).alias("avg_yearly")))


def q18(t: Tables) -> DataFrame:
    big = (t["lineitem"].groupBy(F.col("l_orderkey").alias("b_orderkey"))
           .agg(F.sum("l_quantity").alias("b_qty")).filter(F.col("b_qty") > 300))
    return (t["customer"].join(t["orders"], F.col("c_custkey") == F.col("o_custkey"))
            .join(big, F.col("o_orderkey") == F.col("b_orderkey"), "left_semi")
            .join(t["lineitem"], F.col("o_orderkey") == F.col("l_orderkey"))
            .groupBy("c_name", "c_custkey", "o_orderkey", "o_orderdate", "o_totalprice")
            .agg(F.sum("l_quantity").alias("sum_qty"))
            .orderBy(F.desc("o_totalprice"), "o_orderdate").limit(100))


def q19(t: Tables) -> DataFrame:
    def case(brand: str, containers: list[str], lo: int, hi: int, size: int) -> Any:
        return ((F.col("p_brand") == brand) & F.col("p_container").isin(*containers)
                & F.col("l_quantity").between(lo, hi) & F.col("p_size").between(1, size))
    cond = (case("Brand#12", ["SM CASE", "SM BOX", "SM PACK", "SM PKG"], 1, 11, 5)
            | case("Brand#23", ["MED BAG", "MED BOX", "MED PKG", "MED PACK"], 10, 20, 10)
            | case("Brand#34", ["LG CASE", "LG BOX", "LG PACK", "LG PKG"], 20, 30, 15))
    return (t["lineitem"].filter(F.col("l_shipmode").isin("AIR", "AIR REG")
                                 & (F.col("l_shipinstruct") == "DELIVER IN PERSON"))
            .join(t["part"], F.col("p_partkey") == F.col("l_partkey")).filter(cond)
            .agg(F.sum(_rev()).alias("revenue")))


def q20(t: Tables) -> DataFrame:
    forest = t["part"].filter(F.col("p_name").startswith("forest")).select("p_partkey")
    shipped = (t["lineitem"].filter((F.col("l_shipdate") >= _d("1994-01-01"))
                                    & (F.col("l_shipdate") < _d("1995-01-01")))
               .groupBy(F.col("l_partkey").alias("q_partkey"),
                        F.col("l_suppkey").alias("q_suppkey"))
               .agg((0.5 * F.sum("l_quantity")).alias("half_qty")))
    excess = (t["partsupp"].join(forest, F.col("ps_partkey") == F.col("p_partkey"), "left_semi")
              .join(shipped, (F.col("ps_partkey") == F.col("q_partkey"))
                    & (F.col("ps_suppkey") == F.col("q_suppkey")))
              .filter(F.col("ps_availqty") > F.col("half_qty")))
    return (t["supplier"].join(excess, F.col("s_suppkey") == F.col("ps_suppkey"), "left_semi")
            .join(t["nation"].filter(F.col("n_name") == "CANADA"),
                  F.col("s_nationkey") == F.col("n_nationkey"))
            .select("s_name", "s_address").orderBy("s_name"))


def q21(t: Tables) -> DataFrame:
    li = t["lineitem"]
    others = li.select(F.col("l_orderkey").alias("o2_key"), F.col("l_suppkey").alias("o2_supp"))
    late_others = (li.filter(F.col("l_receiptdate") > F.col("l_commitdate"))
                   .select(F.col("l_orderkey").alias("o3_key"),
                           F.col("l_suppkey").alias("o3_supp")))
    return (li.filter(F.col("l_receiptdate") > F.col("l_commitdate"))
            .join(t["supplier"], F.col("s_suppkey") == F.col("l_suppkey"))
            .join(t["orders"].filter(F.col("o_orderstatus") == "F"),
                  F.col("o_orderkey") == F.col("l_orderkey"))
            .join(t["nation"].filter(F.col("n_name") == "SAUDI ARABIA"),
                  F.col("s_nationkey") == F.col("n_nationkey"))
            .join(others, (F.col("o2_key") == F.col("l_orderkey"))
                  & (F.col("o2_supp") != F.col("l_suppkey")), "left_semi")
            .join(late_others, (F.col("o3_key") == F.col("l_orderkey"))
                  & (F.col("o3_supp") != F.col("l_suppkey")), "left_anti")
            .groupBy("s_name").agg(F.count("*").alias("numwait"))
            .orderBy(F.desc("numwait"), "s_name").limit(100))


def q22(t: Tables) -> DataFrame:
    codes = ["13", "31", "23", "29", "30", "18", "17"]
    cust = (t["customer"].withColumn("cntrycode", F.substring("c_phone", 1, 2))
            .filter(F.col("cntrycode").isin(*codes)))
    avg_bal = cust.filter(F.col("c_acctbal") > 0).agg(F.avg("c_acctbal").alias("avg_bal"))
    return (cust.join(t["orders"], F.col("c_custkey") == F.col("o_custkey"), "left_anti")
            .crossJoin(avg_bal).filter(F.col("c_acctbal") > F.col("avg_bal"))
            .groupBy("cntrycode").agg(F.count("*").alias("numcust"),
                                      F.sum("c_acctbal").alias("totacctbal"))
            .orderBy("cntrycode"))


QUERIES: list[Callable[[Tables], DataFrame]] = [
    q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18, q19, q20,
    q21, q22]
