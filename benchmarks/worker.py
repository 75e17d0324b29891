"""One benchmark job in its own driver process: ``python -m benchmarks.worker SPEC.json OUT.json``.

SPEC is ``{"job": ..., "name": ..., "params": {...}, "reps": n, "work": dir, "event_log":
bool, "peer_jar": path}`` (or ``{"batch": [SPEC, ...], ...}`` to run several in one process);
the figures go to OUT as JSON. :mod:`benchmarks.run` starts one worker per job.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

import pipetrace.spark as pt
from benchmarks import harness, peers, tpch, workloads

__all__ = ["main"]


def _session(work: Path, event_log: bool, driver_memory: str, peer_jar: str | None) -> Any:
    builder = (SparkSession.builder.master("local[2]").appName("pipetrace-bench")
               .config("spark.driver.memory", driver_memory)
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC"))
    if event_log:
        (work / "eventlog").mkdir(parents=True, exist_ok=True)
        builder = (builder.config("spark.eventLog.enabled", "true")
                   .config("spark.eventLog.dir", str(work / "eventlog")))
    if peer_jar:
        # OpenLineage as its users configure it: static confs, hence a process of its own.
        for key, value in peers.openlineage_conf(Path(peer_jar), work / "openlineage.jsonl").items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _interleaved(spark: Any, job: str, units: list[workloads.Unit], spec: dict[str, Any],
                 *, warmup: bool = True, peer: peers.Peer | None = None) -> dict[str, Any]:
    work = Path(spec["work"])
    warmup = warmup and spec["params"].get("warmup", True)
    m = harness.measure(spark, units, spec["reps"], work, job, warmup=warmup,
                        commit_interval=spec["params"].get("commit_interval"), peer=peer)
    out = {"samples": m["samples"], "ratios": harness.ratios(m["samples"]),
           "ratios_with_drain": harness.ratios(m["samples"], key="drain"),
           "capture": harness.summarize_capture(m["phases"]), "phases": m["phases"]}
    if peer is not None:
        out["peer"] = {"name": "openlineage", "version": peers.VERSION,
                       "ratios": harness.ratios(m["samples"], mode="openlineage"),
                       "ratios_with_drain": harness.ratios(m["samples"], key="drain",
                                                           mode="openlineage"),
                       "phases": m["peer_phases"]}
    return out


def _growth(spark: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline at three data sizes, and the deep plan at three plan sizes."""
    p = spec["params"]
    out: dict[str, Any] = {"data_sizes": {}, "plan_sizes": {}}
    # Each action builds its DataFrame afresh, as an agent's code does: re-collecting one
    # DataFrame would reuse its shuffle outputs (the work would not grow with the rows) and the
    # listener's per-QueryExecution cache (the capture cost would not grow with the plan).
    for rows in p["rows"]:
        units = [(f"rows={rows}", lambda rows=rows: [
            workloads.pipeline_frame(spark, rows).collect() for _ in range(p["actions"])] and None)]
        out["data_sizes"][str(rows)] = _interleaved(spark, f"growth-rows{rows}", units, spec)
    for cols in p["columns"]:
        units = [(f"columns={cols}", lambda cols=cols: [
            workloads.deep_plan_frame(spark, cols).collect() for _ in range(p["actions"])]
            and None)]
        out["plan_sizes"][str(cols)] = _interleaved(spark, f"growth-cols{cols}", units, spec)
    return out


def _delivery(spark: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Latency from action end to row queryable, and steps/s committed to Delta."""
    from deltalake import DeltaTable

    p = spec["params"]
    work = Path(spec["work"])
    table = str(work / "delivery-table")
    df = spark.range(100)
    df.count()
    handle = pt.attach(spark, table=table, spool=str(work / "spool"), run_id="delivery-paced")
    ends: list[float] = []
    seen: dict[int, float] = {}
    stop = threading.Event()

    def poll() -> None:
        # What a user's query sees: the table's latest version, this run's rows.
        while not stop.is_set():
            try:
                rows = DeltaTable(table).to_pyarrow_table(
                    columns=["seq"], filters=[("run_id", "=", "delivery-paced")])
                now = time.time()
                for seq in rows.column("seq").to_pylist():
                    seen.setdefault(int(seq), now)
            except Exception:  # noqa: BLE001, S110 - the table is not created yet
                pass
            stop.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    for _ in range(p["actions"]):
        df.count()
        ends.append(time.time())
        time.sleep(p["pace_s"])
    deadline = time.time() + 30
    while len(seen) < len(ends) and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    poller.join()
    handle.detach()
    latencies = sorted(seen[i + 1] - end for i, end in enumerate(ends) if i + 1 in seen)

    # Throughput: a burst captured with background commits off, then committed by one flush.
    burst = pt.attach(spark, table=table, spool=str(work / "spool"), run_id="delivery-burst",
                      commit_interval=3600)
    for _ in range(p["burst"]):
        df.count()
    started = time.perf_counter()
    flushed = burst.flush()
    elapsed = time.perf_counter() - started
    burst.detach()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else -1.0

    return {"actions": len(ends), "visible": len(latencies),
            "latency_p50_s": pct(0.50), "latency_p95_s": pct(0.95),
            "latency_max_s": latencies[-1] if latencies else -1.0,
            "burst_steps": flushed.committed, "burst_commit_s": elapsed,
            "steps_per_s_committed": flushed.committed / elapsed if elapsed else 0.0}


def _worst_case(spark: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Listener-thread time of one failing step with a huge error message, and of the same step
    with a 100-char message (the baseline, interleaved in this process): issue 9, item 10."""
    p = spec["params"]
    work = Path(spec["work"])
    sizes = {"baseline": 100, "huge": p["message_chars"]}
    out: dict[str, Any] = {"message_chars": p["message_chars"]}
    for kind in p["kinds"]:
        samples: dict[str, list[float]] = {name: [] for name in sizes}
        steps: dict[str, Any] = {}
        for rep in range(-1 if p.get("warmup", True) else 0, spec["reps"]):   # -1: warm-up
            for name, chars in sizes.items():
                action = workloads.failing_action(spark, kind, chars)
                handle = pt.attach(spark, table=str(work / "table"), spool=str(work / "spool"),
                                   run_id=f"worst-{kind}-{name}-{rep}", commit_interval=3600)
                action()
                handle.flush()
                cost = handle.status()["capture_time"]
                step = handle.steps().iloc[-1]
                handle.detach()
                if rep >= 0:
                    samples[name].append(cost["total_ms"])
                steps[name] = {"steps": cost["count"], "status": step["status"],
                               "error_chars": len(step["error"] or ""),
                               "warnings": list(step["capture_warnings"])}
        out[kind] = {"samples_ms": samples, "steps": steps}
    return out


def _fixed(spark: Any, spec: dict[str, Any], peer: peers.Peer | None) -> dict[str, Any]:
    """Whole process with capture always on or always off (or the peer always on): driver peak
    RSS."""
    p = spec["params"]
    work = Path(spec["work"])
    if peer is not None:
        peer.switch.set(bool(p.get("peer")))
    handle = None
    if p["capture"]:
        handle = pt.attach(spark, table=str(work / "table"), spool=str(work / "spool"),
                           run_id="rss")
    started = time.perf_counter()
    for _, body in (workloads.small_counts(spark, p["actions"])
                    + workloads.deep_plan(spark, p["columns"], p["collects"])):
        body()
    wall = time.perf_counter() - started
    if handle is not None:
        handle.detach()
    out = {"capture": p["capture"], "wall_s": wall, **harness.rss(spark)}
    if peer is not None and p.get("peer"):
        peer.switch.set(False)
        out["peer"] = peers.VERSION
    return out


def run_job(spark: Any, spec: dict[str, Any], peer: peers.Peer | None = None) -> dict[str, Any]:
    """Run one job spec in this process; return its figures."""
    job, p, work = spec["job"], spec["params"], Path(spec["work"])
    if job == "small_counts":
        return _interleaved(spark, job, workloads.small_counts(spark, p["actions"]), spec,
                            peer=peer)
    if job == "deep_plan":
        return _interleaved(spark, job, workloads.deep_plan(spark, p["columns"], p["collects"]),
                            spec, peer=peer)
    if job == "writes":
        return _interleaved(spark, job, workloads.writes(spark, p["appends"], work / "out"), spec,
                            peer=peer)
    if job == "tpch":
        data = tpch.generate(Path(p["data_root"]), p["scale"])
        return _interleaved(spark, job, workloads.tpch_units(spark, data, p.get("queries")), spec,
                            peer=peer)
    if job == "growth":
        return _growth(spark, spec)
    if job == "delivery":
        return _delivery(spark, spec)
    if job == "listener_worst_case":
        return _worst_case(spark, spec)
    if job == "rss":
        return _fixed(spark, spec, peer)
    raise ValueError(f"unknown job {job!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the spec, run the job, write its figures (and Spark's bus metrics)."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    Path(spec["work"]).mkdir(parents=True, exist_ok=True)
    work = Path(spec["work"])
    spark = _session(work, spec.get("event_log", False), spec.get("driver_memory", "4g"),
                     spec.get("peer_jar"))
    peer = peers.Peer(spark, work / "openlineage.jsonl") if spec.get("peer_jar") else None
    # A batch (quick mode only) runs several jobs in this one process to save JVM start-ups.
    results = {}
    for entry in spec.get("batch", [spec]):
        job = {**entry, "work": str(Path(spec["work"]) / entry["name"])}
        started = time.perf_counter()
        result = run_job(spark, job, peer)
        result["job_s"] = time.perf_counter() - started
        result["bus"] = harness.bus_metrics(spark)
        if job["job"] != "rss":
            result["rss"] = harness.rss(spark)
        results[job["name"]] = result
    Path(args[1]).write_text(json.dumps(results if "batch" in spec else results[spec["name"]],
                                        indent=1))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
