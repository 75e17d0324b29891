"""Secrets never reach the spool or the table: pipelines carry seeded secrets in every place
the issue lists, and everything pipetrace wrote is searched for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

import pipetrace
from pipetrace.spark import Handle

SEEDS = {
    "jdbc-url": "seeded-S1-jdbc-url-password",
    "jdbc-property": "seeded-S2-jdbc-property-password",
    "option-secret": "seeded-S3-option-secret",
    "option-sas": "seeded-S4-option-sas",
    "option-token": "seeded-S5-option-token",
    "session-storage-key": "seeded-S6-storage-account-key",
    "uri-userinfo": "seeded-S7-uri-password",
    "static-conf": "seeded-S8-static-conf-secret",   # set in pyproject's spark_options
    "error-message": "seeded-S9-error-token",
    "option-credential": "seeded-S10-option-credential",
}


def written_text(handle: Handle, spool: Path) -> tuple[str, str]:
    """Everything the capture wrote: spool segments (before commit) and every table row."""
    handle._bridge.flush(handle.run_id, 60_000)   # seal without committing, to read the spool
    spooled = "".join(p.read_text() for p in spool.rglob("seg-*.jsonl*"))
    handle.flush()
    rows = pipetrace.sql("SELECT * FROM pipeline_steps", table=handle.table).to_pylist()
    return spooled, json.dumps(rows, default=str)


def test_seeded_secrets_never_reach_spool_or_table(spark: Any, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    handle = pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(spool),
                              commit_interval=3600)
    try:
        url = f"jdbc:derby:memory:pt_secrets;create=true;user=app;password={SEEDS['jdbc-url']}"
        props = {"user": "app", "password": SEEDS["jdbc-property"]}
        spark.range(5).write.jdbc(url, "T_SECRETS", mode="overwrite", properties=props)
        spark.read.jdbc(url, "T_SECRETS", properties=props).count()
        (spark.range(3).write.mode("overwrite").option("secret", SEEDS["option-secret"])
         .option("sas", SEEDS["option-sas"]).option("token", SEEDS["option-token"])
         .option("credential", SEEDS["option-credential"]).parquet(str(tmp_path / "out")))
        spark.conf.set("fs.azure.account.key.acct.dfs.core.windows.net",
                       SEEDS["session-storage-key"])
        # An agent that read a key and pasted it into a query:
        spark.range(1).select(F.lit(SEEDS["session-storage-key"]).alias("k"),
                              F.lit(SEEDS["static-conf"])).collect()
        with pytest.raises(Exception, match="Wrong FS"):
            spark.range(2).write.parquet(
                f"file://agent:{SEEDS['uri-userinfo']}@localhost{tmp_path}/userinfo")
        with pytest.raises(Exception, match="error-token"):
            spark.range(1).select(
                F.raise_error(F.lit(f"token={SEEDS['error-message']}"))).collect()
        spooled, table = written_text(handle, spool)
    finally:
        spark.conf.unset("fs.azure.account.key.acct.dfs.core.windows.net")
        handle.detach()
    steps = pipetrace.steps(handle.run_id, table=handle.table)
    # The pipeline really was captured: 6 actions, the JDBC write with its format, two failures.
    assert steps["action"].tolist() == ["write", "count", "write", "collect", "write", "collect"]
    assert steps.iloc[0]["output"]["format"] == "jdbc"
    assert steps["status"].tolist().count("FAILED") == 2
    assert "redacted" in spooled and "redacted" in table
    leaks = {name: (seed in spooled, seed in table) for name, seed in SEEDS.items()
             if seed in spooled or seed in table}
    assert leaks == {}


def test_literal_masking_is_off_by_default_and_hides_filter_values(spark: Any,
                                                                 tmp_path: Path) -> None:
    ssn = "123-45-6789"
    people = spark.createDataFrame([("ann", ssn), ("bob", "987-65-4321")], "name string, ssn string")
    texts = {}
    for mask in (False, True):
        with pipetrace.attach(spark, table=str(tmp_path / f"t{mask}"),
                              spool=str(tmp_path / f"s{mask}"), mask_literals=mask) as handle:
            assert people.filter(F.col("ssn") == ssn).count() == 1
            spooled, table = written_text(handle, tmp_path / f"s{mask}")
            texts[mask] = spooled + table
            step = handle.steps().iloc[-1]
            assert "Filter" in step["logical_plan"] and step["rows_out"] == 1
    assert ssn in texts[False]
    assert ssn not in texts[True] and "***" in texts[True]
