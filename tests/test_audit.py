"""The shipped audit SQL against a real local table, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pipetrace


def _audit(table: str, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "pipetrace", "audit", *args, "--table", table,
                           "--format", "json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_audit_queries(spark, tmp_path):
    table = str(tmp_path / "pipeline_steps")
    runs = []
    for limit in (10, 20):  # two runs of the same job; the second plan differs at step 1
        run_id = f"audit-{limit}-{uuid.uuid4().hex[:6]}"
        with pipetrace.attach(spark, table=table, spool=str(tmp_path / "spool"), run_id=run_id,
                              tags={"job": "nightly"}) as trace:
            src = tmp_path / f"src{limit}"
            spark.range(limit).write.parquet(str(src))
            spark.read.parquet(str(src)).where("id > 2").count()
            try:
                spark.sql("SELECT CAST('x' AS INT) AS bad").collect()
            except Exception:  # noqa: BLE001 - the failed step is the point
                pass
            trace.flush()
        runs.append(run_id)

    overview = _audit(table, "runs")
    assert [r["run_id"] for r in overview] == runs[::-1]
    assert overview[0]["steps"] == 3 and overview[0]["failed_steps"] == 1

    flow = _audit(table, "run-steps", "--run-id", runs[1])
    counted = [r for r in flow if r["seq"] == 2]
    assert {r["operator"] for r in counted} >= {"Filter"}
    assert any(r["operator"] == "Filter" and r["operator_rows_out"] == 17 for r in counted)

    failed = _audit(table, "failed")
    assert len(failed) == 2 and all("CAST" in r["error"] or "cast" in r["error"].lower()
                                    for r in failed)

    lineage = _audit(table, "lineage", "--run-id", runs[1])
    assert any(r["output_name"] and r["output_name"].endswith("src20") for r in lineage)
    assert any(r["input_name"] and r["input_name"].endswith("src20") for r in lineage)

    changed = _audit(table, "fingerprint-changes", "--run-id", runs[1])
    assert changed and all(r["previous_run_id"] == runs[0] for r in changed)
    assert 1 in {r["seq"] for r in changed}
