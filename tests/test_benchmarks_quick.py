"""The benchmark command's quick mode runs end to end and reports every figure (no timings
are asserted: they mean nothing at quick sizes or on a shared CI machine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # The OpenLineage peer runs where its jar can be fetched (Maven and Maven Central: CI has
    # both) or is already cached; each capture's record is compared with the actions' truth.
    cache = Path(os.environ.get("PIPETRACE_PEERS_CACHE", Path.home() / ".cache/pipetrace/peers"))
    peer = shutil.which("mvn") is not None or any(cache.glob("openlineage-spark_2.13-*.jar"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "python"),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out),
                           "--data", str(tmp_path / "data"), *([] if peer else ["--no-peers"])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    errors = {k: v["error"][-500:] for k, v in doc["jobs"].items() if "error" in v}
    assert not errors
    s = doc["summary"]
    assert set(s["ratios"]) == {"small_counts", "tpch", "deep_plan", "writes"}
    for row in s["ratios"].values():
        assert {"median", "min", "max", "target", "median_off_s", "median_on_s"} <= set(row)
    for cost in s["capture_cost"].values():
        assert {"p50_ms", "p99_ms", "max_ms", "listener_share_of_wall"} <= set(cost)
    assert set(s["event_log"]) == {"small_counts", "deep_plan"}
    assert set(s["deferred_commit"]) == {"small_counts", "deep_plan", "writes"}
    assert len(s["growth"]["data_sizes"]) == 3 and len(s["growth"]["plan_sizes"]) == 3
    assert {"latency_p50_s", "latency_p95_s", "steps_per_s_committed"} <= set(s["delivery"])
    assert s["delivery"]["visible"] == s["delivery"]["actions"]
    if peer:
        assert set(s["peers"]) == {"small_counts", "tpch", "deep_plan", "writes"}
        for row in s["peers"].values():
            for capture in ("pipetrace", "openlineage"):
                assert {"ratio", "listener_ms_spark_timer", "listener_share", "bus_dropped",
                        "actions", "recorded", "rows_present", "rows_true"} <= set(row[capture])
            # pipetrace records every action with its true rows_out.
            assert row["pipetrace"]["recorded"] == row["pipetrace"]["actions"]
            assert row["pipetrace"]["rows_true"] == row["pipetrace"]["actions"]
        # OpenLineage reports the rows of every write (its outputStatistics facet).
        writes = s["peers"]["writes"]["openlineage"]
        assert writes["recorded"] == writes["rows_true"] == writes["actions"]
        assert "| workload | capture |" in proc.stdout
    assert set(s["rss"]) == ({"off", "on", "openlineage"} if peer else {"off", "on"})
    for mode in s["rss"].values():
        assert {"jvm_peak_mib", "jvm_live_heap_mib", "python_peak_mib"} <= set(mode)
    assert set(s["worst_case"]) == {"udf", "raise_error"}
    for worst in s["worst_case"].values():
        assert {"baseline_ms", "huge_ms", "ratio"} <= set(worst)
        assert worst["warned"] and worst["error_chars"] < worst["message_chars"]
    assert s["dropped_events"] == 0
    assert "| workload |" in proc.stdout
