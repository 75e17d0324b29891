"""Measure units with capture off and on, interleaved, inside one Spark driver process.

Capture on = ``pipetrace.attach`` before the unit, ``flush``/``detach`` after it (not timed);
capture off = nothing attached (detach also takes pipetrace's tracker off the listener bus).
Each unit is timed twice per repetition, in alternating order (off, on / on, off), so slow
drift of a shared machine hits both sides alike. In a process with the OpenLineage peer
configured, three times: off, pipetrace on, OpenLineage on (its listener put on the bus for
the unit, pipetrace detached), in rotating order.
"""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd

import pipetrace.spark as pt
from benchmarks.workloads import Unit

__all__ = ["PIPETRACE_LISTENERS", "bus_metrics", "dropped_events", "listener_timers", "measure",
           "ratios", "rss", "summarize_capture", "timer_delta"]


def _drain(spark: Any) -> None:
    spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(600_000)


def measure(spark: Any, units: list[Unit], reps: int, work: Path, label: str, *,
            warmup: bool = True, commit_interval: float | None = None,
            peer: Any = None) -> dict[str, Any]:
    """Time every unit ``reps`` times with capture off and on; return all samples.

    Capture is attached with attach()'s defaults (what a user gets) unless ``commit_interval``
    is given (the deferred-commit diagnostic). With ``peer`` (a :class:`benchmarks.peers.Peer`),
    a third mode, ``openlineage``: the peer's listener on the bus, pipetrace off; the three
    modes rotate their order every repetition. In that case each phase also records what was
    captured against the truth the units return (their actions' row counts).

    Per unit and mode: ``wall_s`` (the user's actions) and ``drain_s`` (time for Spark's
    listener bus to catch up afterwards). Per capture phase: the listener's own timings.
    """
    modes = ["off", "on"] + (["openlineage"] if peer is not None else [])
    if peer is not None:
        peer.switch.set(False)
    if warmup:
        for _, body in units:
            body()
        if peer is not None:
            # Each capture's first use (class loading, the peer's context set-up: seconds for
            # OpenLineage) happens once per process, untimed, on the first unit.
            handle = pt.attach(spark, table=str(work / "table"), spool=str(work / "spool"),
                               run_id=f"{label}-warmup")
            units[0][1]()
            handle.flush()
            handle.detach()
            peer.switch.set(True)
            units[0][1]()
            _drain(spark)
            peer.switch.set(False)
    samples: dict[str, dict[str, list[float]]] = {
        name: {k: [] for m in modes for k in (m, f"drain_{m}")} for name, _ in units}
    phases: list[dict[str, Any]] = []
    peer_phases: list[dict[str, Any]] = []
    for rep in range(reps):
        for index, (name, body) in enumerate(units):
            shift = (rep + index) % len(modes)   # off,on / on,off; or off,on,ol / on,ol,off / ...
            order = modes[shift:] + modes[:shift]
            for mode in order:
                handle = None
                if mode == "on":
                    extra = {} if commit_interval is None else {"commit_interval": commit_interval}
                    handle = pt.attach(spark, table=str(work / "table"), spool=str(work / "spool"),
                                       run_id=f"{label}-{name}-{rep}", tags={"bench": label},
                                       **extra)
                    before = handle.status()
                    timers = listener_timers(spark, PIPETRACE_LISTENERS) if peer else {}
                    bus_dropped = dropped_events(spark) if peer else 0
                elif mode == "openlineage":
                    mark = peer.mark(spark)
                    peer.switch.set(True)
                started = time.perf_counter()
                truth = body()
                ended = time.perf_counter()
                _drain(spark)
                drained = time.perf_counter()
                samples[name][mode].append(ended - started)
                samples[name][f"drain_{mode}"].append(drained - ended)
                if mode == "openlineage":
                    peer.switch.set(False)
                    peer_phases.append({"unit": name, "rep": rep, "wall_s": ended - started,
                                        **peer.recorded(spark, mark, truth)})
                if handle is not None:
                    flush = handle.flush()
                    after = handle.status()
                    phase = {"unit": name, "rep": rep, "wall_s": ended - started,
                             "steps": flush.captured, "committed": flush.committed,
                             "dropped": flush.dropped,
                             "capture_time": after.get("capture_time", {}),
                             "tracker_ms": after["tracker_time"]["total_ms"]
                             - before["tracker_time"]["total_ms"],
                             "listener_errors": after.get("listener_errors", 0)}
                    if peer is not None:
                        phase["recorded"] = _pipetrace_recorded(handle, truth)
                        phase["spark_timer"] = timer_delta(
                            timers, listener_timers(spark, PIPETRACE_LISTENERS))
                        phase["bus_dropped"] = dropped_events(spark) - bus_dropped
                    handle.detach()
                    phases.append(phase)
    return {"samples": samples, "phases": phases, "peer_phases": peer_phases}


def _pipetrace_recorded(handle: Any, truth: list[int] | None) -> dict[str, Any]:
    """What pipetrace recorded in one phase: steps, and their rows_out against the truth."""
    steps = handle.steps()
    rows = [None if pd.isna(r) else int(r) for r in steps["rows_out"]]
    return {"actions": len(truth) if truth is not None else None, "steps": len(rows),
            "rows_present": sum(r is not None for r in rows),
            "rows_true": (sum(a == b for a, b in zip(rows, truth, strict=False))
                          if truth is not None and len(rows) == len(truth)
                          else 0 if truth is not None and not rows else None)}


def ratios(samples: dict[str, dict[str, list[float]]], key: str = "",
           mode: str = "on") -> list[float]:
    """One ratio per repetition: sum of ``mode``-times (default on) over sum of off-times of
    all units."""
    names = list(samples)
    reps = len(samples[names[0]]["off"])
    out = []
    for rep in range(reps):
        on = sum(samples[n][mode][rep] + (samples[n][f"drain_{mode}"][rep] if key else 0)
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


def _registry(spark: Any) -> Any:
    return spark.sparkContext._jsc.sc().listenerBus().metrics().metricRegistry()


# pipetrace's share of Spark's listener thread: its execution tracker (and Databricks context),
# and the bus that calls its QueryExecutionListener.
PIPETRACE_LISTENERS = ("io.pipetrace.", "org.apache.spark.sql.util.ExecutionListenerBus")


def listener_timers(spark: Any, prefixes: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Spark's ``listenerProcessingTime`` timers of the listener classes starting with one of
    ``prefixes``: events handled, and their mean ms in the timer's reservoir (a decaying
    sample of recent events, so count x mean is an estimate of the total)."""
    timers = _registry(spark).getTimers()
    out: dict[str, dict[str, float]] = {}
    for name in timers.keySet().toArray():
        cls = str(name).split("listenerProcessingTime.", 1)[-1]
        if "listenerProcessingTime." in str(name) and cls.startswith(prefixes):
            timer = timers.get(name)
            out[str(name)] = {"count": timer.getCount(),
                              "mean_ms": timer.getSnapshot().getMean() / 1e6}
    return out


def dropped_events(spark: Any) -> int:
    """Events Spark's listener bus dropped so far, all queues (``numDroppedEvents``)."""
    counters = _registry(spark).getCounters()
    return sum(counters.get(n).getCount() for n in counters.keySet().toArray()
               if str(n).endswith("numDroppedEvents"))


def timer_delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
                ) -> dict[str, float]:
    """Events handled between two readings of :func:`listener_timers`, and their estimated
    time (events x the timer's mean at the second reading)."""
    events, ms = 0, 0.0
    for name, t in after.items():
        handled = t["count"] - before.get(name, {}).get("count", 0)
        events += handled
        ms += handled * t["mean_ms"]
    return {"events": events, "ms": ms}


def bus_metrics(spark: Any) -> dict[str, Any]:
    """Spark's own listener-bus metrics: dropped events per queue, time per listener class."""
    registry = _registry(spark)
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
