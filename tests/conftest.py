"""Shared fixtures: one real local SparkSession for the whole suite (pytest-spark's
``spark_session``, configured in pyproject.toml), and a fresh capture per test.

tests/delta needs Delta Lake's jars and the pyspark Delta supports: it runs in the Delta lane
(``python .ci/lanes delta``), which sets PIPETRACE_DELTA_JARS; elsewhere it is not collected.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pipetrace
from pipetrace.spark import Handle
from tests.report_runs import report_runs  # noqa: F401 - the report and diff tests' two runs

collect_ignore = [] if os.environ.get("PIPETRACE_DELTA_JARS") else ["delta"]


@pytest.fixture
def spark(spark_session: Any) -> Any:
    """The suite's SparkSession (local[2], 2 shuffle partitions, no UI)."""
    return spark_session


@pytest.fixture
def trace(spark: Any, tmp_path: Path) -> Iterator[Handle]:
    """A capture attached to the suite's session, writing to this test's own table and spool."""
    handle = pipetrace.attach(spark, table=str(tmp_path / "pipeline_steps"),
                              spool=str(tmp_path / "spool"), run_id=f"test-{uuid.uuid4().hex[:8]}",
                              tags={"suite": "pytest"})
    yield handle
    handle.detach()


def flushed_steps(handle: Handle) -> pd.DataFrame:
    """Flush the capture (explicit signal, no sleeping) and return the run's steps."""
    handle.flush()
    return handle.steps()


@pytest.fixture
def unique() -> str:
    """A name no other test (or earlier run of the suite) uses, for tables and paths."""
    return f"t_{uuid.uuid4().hex[:10]}"
