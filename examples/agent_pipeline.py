"""An agent-style PySpark pipeline: loan risk features for a model-validation report.

This is the kind of code a data agent writes and runs: explore, clean, join, aggregate, write,
retry after an error. Nothing in it mentions pipetrace; run it with capture on:

    pipetrace run examples/agent_pipeline.py
    pipetrace steps

It makes its own input data under a temporary directory (or the directory given as the first
argument) and runs ACTIONS Spark actions, one of which fails on purpose the way agent code
does (a bad cast under ANSI mode) and is retried.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

ACTIONS = 12  # Spark actions this script runs (the failed one included)


def main(workdir: Path) -> None:
    spark = (SparkSession.builder.appName("agent-loan-risk").master("local[2]")
             .config("spark.sql.shuffle.partitions", "4")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.warehouse.dir", str(workdir / "warehouse"))
             # ANSI is Spark 4's default; set here so the bad cast fails on Spark 3.5 too
             .config("spark.sql.ansi.enabled", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")

    # Step 0: the agent materializes its inputs (a stand-in for reading governed tables).
    customers = spark.range(0, 2_000).select(
        F.col("id").alias("customer_id"),
        F.when(F.col("id") % 10 == 0, "SME").otherwise("RETAIL").alias("segment"),
        (F.col("id") % 7).alias("region"))
    loans = spark.range(0, 20_000).select(
        F.col("id").alias("loan_id"),
        (F.col("id") % 2_000).alias("customer_id"),
        ((F.col("id") * 37) % 100_000).cast("double").alias("amount"),
        F.when(F.col("id") % 13 == 0, F.lit(None)).otherwise((F.col("id") % 9).cast("string"))
        .alias("days_past_due"))
    customers.write.mode("overwrite").parquet(str(workdir / "customers"))      # 1
    loans.write.mode("overwrite").parquet(str(workdir / "loans"))              # 2

    # Step 1: explore.
    loans = spark.read.parquet(str(workdir / "loans"))
    customers = spark.read.parquet(str(workdir / "customers"))
    print("loans:", loans.count())                                             # 3
    loans.show(5)                                                              # 4

    # Step 2: clean. The agent first casts a column that has bad values; ANSI mode fails it.
    dirty = loans.withColumn("dpd", F.concat(F.col("days_past_due"), F.lit("d")).cast("int"))
    try:
        dirty.agg(F.max("dpd")).collect()                                      # 5 (fails)
    except Exception as exc:  # noqa: BLE001 - the agent reads the error and retries
        print("cast failed, retrying without the suffix:", type(exc).__name__,
              "(on purpose: this example fails one action, recorded as a failed step)")
    clean = (loans.filter(F.col("days_past_due").isNotNull())
             .withColumn("dpd", F.col("days_past_due").cast("int"))
             .filter(F.col("amount") > 0))
    print("clean loans:", clean.count())                                       # 6

    # Step 3: join and aggregate.
    enriched = clean.join(customers, "customer_id")
    features = (enriched.groupBy("segment", "region")
                .agg(F.count("*").alias("loans"), F.sum("amount").alias("exposure"),
                     F.avg((F.col("dpd") > 3).cast("int")).alias("share_dpd_gt_3")))
    print(features.orderBy("segment", "region").take(3))                       # 7
    pdf = features.toPandas()                                                  # 8
    print("feature rows:", len(pdf))

    # Step 4: persist for the validation report.
    features.write.mode("overwrite").saveAsTable("loan_risk_features")         # 9
    spark.sql("INSERT INTO loan_risk_features "
              "SELECT 'ALL', -1, count(*), sum(amount), 0.0 FROM parquet.`"
              + str(workdir / "loans") + "`")                                  # 10
    spark.table("loan_risk_features").filter("region = -1").collect()          # 11
    print("empty:", enriched.filter("amount < 0").isEmpty())                   # 12
    spark.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory(prefix="agent-pipeline-") as tmp:
            main(Path(tmp))
