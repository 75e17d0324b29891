"""The Delta lane's session: Spark with Delta Lake's jars (fetched by Maven, given as
``spark.jars``; see jvm_shim/test_jars.py), Delta's SQL extension and catalog, and its own
warehouse. Run with ``python .ci/lanes delta``, which sets PIPETRACE_DELTA_JARS."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_conf(warehouse: Path) -> dict[str, str]:
    """Every setting of the lane's session (also what a driver subprocess is given)."""
    return {
        "spark.master": "local[2]",
        "spark.app.name": "pipetrace-delta-tests",
        "spark.jars": os.environ["PIPETRACE_DELTA_JARS"],
        **DELTA_CONF,
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(warehouse),
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        # Delta reconstructs a snapshot's state with this many partitions (default 50)
        "spark.databricks.delta.snapshotPartitions": "2",
        # VACUUM lists the table's folders with up to this many tasks (default 10,000)
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
    }


@pytest.fixture(scope="session")
def warehouse() -> Iterator[Path]:
    """The lane's Spark warehouse (catalog tables live here)."""
    folder = Path(tempfile.mkdtemp(prefix="pipetrace-delta-wh-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def spark_session(warehouse: Path) -> Iterator[Any]:
    """One Spark session with Delta for the whole lane (replaces pytest-spark's)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in delta_conf(warehouse).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
