"""Measure units with capture off and on, interleaved, inside one Spark driver process.

Capture on = ``pipetrace.attach`` before the unit, ``flush``/``detach`` after it (not timed);
capture off = nothing attached (detach also takes pipetrace's tracker off the listener bus).
Each unit is timed twice per repetition, in alternating order (off, on / on, off), so slow
drift of a shared machine hits both sides alike.
"""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path
from typing import Any

import pipetrace.spark as pt
from benchmarks.workloads import Unit

__all__ = ["bus_metrics", "measure", "rss", "summarize_capture"]


def _drain(spark: Any) -> None:
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(600_000)


def measure(spark: Any, units: list[Unit], reps: int, work: Path, label: str, *,
            warmup: bool = True, commit_interval: float | None = None) -> dict[str, Any]:
    """Time every unit ``reps`` times with capture off and on; return all samples.

    Capture is attached with attach()'s defaults (what a user gets) unless ``commit_interval``
    is given (the deferred-commit diagnostic).

    Per unit and mode: ``wall_s`` (the user's actions) and ``drain_s`` (time for Spark's
    listener bus to catch up afterwards). Per capture phase: the listener's own timings.
    """
    if warmup:
        for _, body in units:
            body()
    samples: dict[str, dict[str, list[float]]] = {
        name: {"off": [], "on": [], "drain_off": [], "drain_on": []} for name, _ in units}
    phases: list[dict[str, Any]] = []
    for rep in range(reps):
        for index, (name, body) in enumerate(units):
            order = ("off", "on") if (rep + index) % 2 == 0 else ("on", "off")
            for mode in order:
                handle = None
                if mode == "on":
                    extra = {} if commit_interval is None else {"commit_interval": commit_interval}
                    handle = pt.attach(spark, table=str(work / "table"), spool=str(work / "spool"),
                                       run_id=f"{label}-{name}-{rep}", tags={"bench": label},
                                       **extra)
                    before = handle.status()
                started = time.perf_counter()
                body()
                ended = time.perf_counter()
                _drain(spark)
                drained = time.perf_counter()
                samples[name][mode].append(ended - started)
                samples[name][f"drain_{mode}"].append(drained - ended)
                if handle is not None:
                    flush = handle.flush()
                    after = handle.status()
                    handle.detach()
                    phases.append({"unit": name, "rep": rep, "wall_s": ended - started,
                                   "steps": flush.captured, "committed": flush.committed,
                                   "dropped": flush.dropped,
                                   "capture_time": after.get("capture_time", {}),
                                   "tracker_ms": after["tracker_time"]["total_ms"]
                                   - before["tracker_time"]["total_ms"],
                                   "listener_errors": after.get("listener_errors", 0)})
    return {"samples": samples, "phases": phases}


def ratios(samples: dict[str, dict[str, list[float]]], key: str = "") -> list[float]:
    """One ratio per repetition: sum of on-times over sum of off-times of all units."""
    names = list(samples)
    reps = len(samples[names[0]]["off"])
    out = []
    for rep in range(reps):
        on = sum(samples[n]["on"][rep] + (samples[n]["drain_on"][rep] if key else 0)
                 for n in names)
        off = sum(samples[n]["off"][rep] + (samples[n]["drain_off"][rep] if key else 0)
                  for n in names)
        out.append(on / off)
    return out


def summarize_capture(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step listener cost over all capture phases, and the share of listener time used.

    p50 and p99 are medians over phases of each phase's p50/p99 (a phase = one unit run);
    max is the worst single step.
    """
    timed = [p for p in phases if p["capture_time"].get("count")]
    if not timed:
        return {}
    total_capture = sum(p["capture_time"]["total_ms"] for p in timed)
    total_tracker = sum(p["tracker_ms"] for p in timed)
    wall_ms = sum(p["wall_s"] for p in timed) * 1000
    steps = sum(p["capture_time"]["count"] for p in timed)
    return {
        "steps": steps,
        "p50_ms": statistics.median(p["capture_time"]["p50_ms"] for p in timed),
        "p99_ms": statistics.median(p["capture_time"]["p99_ms"] for p in timed),
        "p99_worst_ms": max(p["capture_time"]["p99_ms"] for p in timed),
        "max_ms": max(p["capture_time"]["max_ms"] for p in timed),
        "mean_ms": total_capture / steps,
        "capture_total_ms": total_capture,
        "tracker_total_ms": total_tracker,
        "listener_share_of_wall": (total_capture + total_tracker) / wall_ms,
        "dropped": sum(p["dropped"] for p in phases),
        "listener_errors": max(p["listener_errors"] for p in phases),
    }


def bus_metrics(spark: Any) -> dict[str, Any]:
    """Spark's own listener-bus metrics: dropped events per queue, time per listener class."""
    registry = spark.sparkContext._jsc.sc().listenerBus().metrics().metricRegistry()
    timers = registry.getTimers()
    counters = registry.getCounters()
    out: dict[str, Any] = {"timers": {}, "counters": {}}
    for name in timers.keySet().toArray():
        timer = timers.get(name)
        snap = timer.getSnapshot()
        out["timers"][str(name)] = {"count": timer.getCount(), "mean_ms": snap.getMean() / 1e6,
                                    "p99_ms": snap.get99thPercentile() / 1e6,
                                    "max_ms": snap.getMax() / 1e6}
    for name in counters.keySet().toArray():
        out["counters"][str(name)] = counters.get(name).getCount()
    return out


def rss(spark: Any) -> dict[str, float]:
    """Peak RSS (MiB) of the driver JVM (VmHWM) and of this Python process, and the JVM's live
    heap after a full GC (what stays reachable: peak RSS mostly shows when the GC ran)."""
    jvm = spark.sparkContext._jvm
    pid = jvm.java.lang.ProcessHandle.current().pid()
    jvm_peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            jvm_peak = int(line.split()[1]) / 1024
    jvm.java.lang.System.gc()
    live = jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
    return {"jvm_peak_mib": jvm_peak, "jvm_live_heap_mib": live.getUsed() / 2**20,
            "python_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
