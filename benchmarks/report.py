"""Turn raw benchmark results into the summary figures and a Markdown report.

Example::

    >>> summarize({})["ratios"]
    {}
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["TARGETS", "render", "summarize"]

# Wall-time ratio capture/baseline targets of issue 5.
TARGETS = {"small_counts": 1.10, "tpch": 1.03, "deep_plan": 1.05, "writes": 1.05}


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def _off_on(job: dict[str, Any]) -> tuple[float, float]:
    """Median total off/on seconds per repetition (all units summed)."""
    samples = job["samples"]
    reps = len(next(iter(samples.values()))["off"])
    off = [sum(s["off"][r] for s in samples.values()) for r in range(reps)]
    on = [sum(s["on"][r] for s in samples.values()) for r in range(reps)]
    return statistics.median(off), statistics.median(on)


def _ratio_row(job: dict[str, Any], target: float | None) -> dict[str, Any]:
    off, on = _off_on(job)
    row: dict[str, Any] = {**_stats(job["ratios"]), "target": target, "median_off_s": off,
                           "median_on_s": on,
                           "median_with_drain": statistics.median(job["ratios_with_drain"])}
    if target is not None:
        row["met"] = row["median"] <= target
    return row


def _recorded(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """What one capture recorded over its phases, against the truth: actions, steps or run
    events, row counts present and equal to the truth (null where they could not be matched)."""
    def total(key: str) -> int | None:
        values = [p[key] for p in phases]
        return None if any(v is None for v in values) else sum(values)

    return {"actions": total("actions"), "recorded": total("recorded"),
            "rows_present": total("rows_present"), "rows_true": total("rows_true")}


def _peer_row(job: dict[str, Any]) -> dict[str, Any]:
    """The peer table's figures of one workload: pipetrace and OpenLineage, same process."""
    peer = job["peer"]
    wall_ms = {m: 1000 * sum(p["wall_s"] for p in phases) for m, phases in
               (("pipetrace", job["phases"]), ("openlineage", peer["phases"]))}
    pt_exact = sum(p["capture_time"].get("total_ms", 0) + p["tracker_ms"] for p in job["phases"])
    pt_timer = sum(p["spark_timer"]["ms"] for p in job["phases"])
    ol_timer = sum(p["spark_timer"]["ms"] for p in peer["phases"])
    return {
        "version": peer["version"], "reps": len(job["ratios"]),
        "median_off_s": _off_on(job)[0],
        "pipetrace": {"ratio": statistics.median(job["ratios"]),
                      "listener_ms_exact": pt_exact, "listener_ms_spark_timer": pt_timer,
                      "listener_share": pt_timer / wall_ms["pipetrace"],
                      "bus_dropped": sum(p["bus_dropped"] for p in job["phases"]),
                      "own_dropped": sum(p["dropped"] for p in job["phases"]),
                      **_recorded([{**p["recorded"], "recorded": p["recorded"]["steps"]}
                                   for p in job["phases"]])},
        "openlineage": {"ratio": statistics.median(peer["ratios"]),
                        "listener_ms_spark_timer": ol_timer,
                        "listener_share": ol_timer / wall_ms["openlineage"],
                        "bus_dropped": sum(p["bus_dropped"] for p in peer["phases"]),
                        "events": sum(p["events"] for p in peer["phases"]),
                        **_recorded([{**p, "recorded": p["complete"]} for p in peer["phases"]])},
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Every headline figure of a run, from the per-job results of :mod:`benchmarks.run`."""
    out: dict[str, Any] = {"ratios": {}, "capture_cost": {}, "event_log": {}, "growth": {},
                           "delivery": {}, "rss": {}, "dropped_events": 0}
    results = {k: v for k, v in results.items() if "error" not in v}
    for name, target in TARGETS.items():
        if name in results:
            out["ratios"][name] = _ratio_row(results[name], target)
            out["capture_cost"][name] = results[name]["capture"]
    for name in list(results):
        if name.endswith("+event_log") and name.split("+")[0] in results:
            base = results[name.split("+")[0]]
            with_log = results[name]
            log_off, _ = _off_on(with_log)
            plain_off, _ = _off_on(base)
            out["event_log"][name.split("+")[0]] = {
                "event_log_over_plain": log_off / plain_off,
                "capture_over_event_log": statistics.median(with_log["ratios"]),
                "capture_over_plain": statistics.median(base["ratios"])}
    out["deferred_commit"] = {
        name.split("+")[0]: {**_stats(r["ratios"]), "capture": r["capture"]}
        for name, r in results.items() if name.endswith("+deferred_commit")}
    if "growth" in results:
        for axis in ("data_sizes", "plan_sizes"):
            out["growth"][axis] = {
                size: {"ratio_median": statistics.median(r["ratios"]),
                       "capture_p50_ms": r["capture"].get("p50_ms"),
                       "capture_mean_ms": r["capture"].get("mean_ms"),
                       "median_off_s": _off_on(r)[0]}
                for size, r in results["growth"][axis].items()}
    if "delivery" in results:
        out["delivery"] = {k: v for k, v in results["delivery"].items()
                           if k not in ("bus", "rss", "spec")}
        out["delivery"]["p95_target_met"] = 0 <= out["delivery"]["latency_p95_s"] < 2.0
    worst = results.get("listener_worst_case")
    out["worst_case"] = {} if not worst else {
        kind: {"message_chars": worst["message_chars"],
               "baseline_ms": statistics.median(r["samples_ms"]["baseline"]),
               "huge_ms": statistics.median(r["samples_ms"]["huge"]),
               "huge_max_ms": max(r["samples_ms"]["huge"]),
               "ratio": statistics.median(r["samples_ms"]["huge"])
               / max(statistics.median(r["samples_ms"]["baseline"]), 1e-6),
               "error_chars": r["steps"]["huge"]["error_chars"],
               "warned": any("cut to" in w for w in r["steps"]["huge"]["warnings"])}
        for kind, r in worst.items() if isinstance(r, dict) and "samples_ms" in r}
    out["peers"] = {name.split("+")[0]: _peer_row(r) for name, r in results.items()
                    if name.endswith("+openlineage") and "peer" in r}
    for mode, job in (("off", results.get("rss_capture_off")),
                      ("on", results.get("rss_capture_on")),
                      ("openlineage", results.get("rss_openlineage"))):
        if job:
            out["rss"][mode] = {"jvm_peak_mib": job["jvm_peak_mib"],
                                "jvm_live_heap_mib": job["jvm_live_heap_mib"],
                                "python_peak_mib": job["python_peak_mib"], "wall_s": job["wall_s"]}
    for job in results.values():
        counters = job.get("bus", {}).get("counters", {})
        out["dropped_events"] += sum(v for k, v in counters.items() if k.endswith("Dropped"
                                                                                  "Events"))
    return out


def _f(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def render(doc: dict[str, Any]) -> str:
    """The summary as Markdown tables (pasted into benchmarks/README.md)."""
    s = doc["summary"]
    lines = ["| workload | target | median | min | max | reps | off s (median) | on s (median) "
             "| median incl. bus drain | met |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in s["ratios"].items():
        lines.append(f"| {name} | ≤ {r['target']} | {_f(r['median'])} | {_f(r['min'])} | "
                     f"{_f(r['max'])} | {r['n']} | {_f(r['median_off_s'], 2)} | "
                     f"{_f(r['median_on_s'], 2)} | {_f(r['median_with_drain'])} | "
                     f"{'yes' if r['met'] else 'NO'} |")
    lines += ["", "| workload | steps | p50 ms | p99 ms | max ms | mean ms | listener-thread "
              "time / wall |", "|---|---|---|---|---|---|---|"]
    for name, c in s["capture_cost"].items():
        if c:
            lines.append(f"| {name} | {c['steps']} | {_f(c['p50_ms'])} | {_f(c['p99_ms'])} | "
                         f"{_f(c['max_ms'])} | {_f(c['mean_ms'])} | "
                         f"{_f(100 * c['listener_share_of_wall'], 2)} % |")
    lines += ["", "| workload | event log / plain (off) | capture / plain | capture / event log "
              "|", "|---|---|---|---|"]
    for name, e in s["event_log"].items():
        lines.append(f"| {name} | {_f(e['event_log_over_plain'])} | "
                     f"{_f(e['capture_over_plain'])} | {_f(e['capture_over_event_log'])} |")
    if s.get("deferred_commit"):
        lines += ["", "| workload, Delta commits deferred to flush | median | min | max | reps |",
                  "|---|---|---|---|---|"]
        for name, r in s["deferred_commit"].items():
            lines.append(f"| {name} | {_f(r['median'])} | {_f(r['min'])} | {_f(r['max'])} | "
                         f"{r['n']} |")
    for axis, rows in s["growth"].items():
        lines += ["", f"| growth: {axis} | ratio (median) | capture p50 ms | capture mean ms "
                  "| off s |", "|---|---|---|---|---|"]
        for size, g in rows.items():
            lines.append(f"| {size} | {_f(g['ratio_median'])} | {_f(g['capture_p50_ms'])} | "
                         f"{_f(g['capture_mean_ms'])} | {_f(g['median_off_s'], 2)} |")
    d = s["delivery"]
    if d:
        lines += ["", f"delivery: {d['visible']}/{d['actions']} paced steps visible; action end "
                  f"→ row queryable p50 {_f(d['latency_p50_s'])} s, p95 "
                  f"{_f(d['latency_p95_s'])} s, max {_f(d['latency_max_s'])} s (target p95 < 2 s:"
                  f" {'met' if d['p95_target_met'] else 'MISSED'}); one flush committed "
                  f"{d['burst_steps']} steps in {_f(d['burst_commit_s'])} s = "
                  f"{_f(d['steps_per_s_committed'], 0)} steps/s"]
    if s.get("worst_case"):
        lines += ["", "| listener worst case: one failing step | message chars | baseline ms "
                  "(100 chars) | huge ms (median) | huge ms (max) | huge / baseline | error kept "
                  "| warned |", "|---|---|---|---|---|---|---|---|"]
        for kind, w in s["worst_case"].items():
            lines.append(f"| {kind} | {w['message_chars']:,} | {_f(w['baseline_ms'])} | "
                         f"{_f(w['huge_ms'])} | {_f(w['huge_max_ms'])} | {_f(w['ratio'], 2)} | "
                         f"{w['error_chars']:,} | {'yes' if w['warned'] else 'no'} |")
    if s.get("peers"):
        lines += ["", _render_peers(s["peers"])]
    if s["rss"]:
        lines += ["", "| driver memory | JVM peak RSS MiB | JVM live heap after GC MiB | "
                  "Python peak RSS MiB |", "|---|---|---|---|"]
        labels = {"off": "capture off", "on": "pipetrace on", "openlineage": "OpenLineage on"}
        for mode, r in s["rss"].items():
            lines.append(f"| {labels[mode]} | {_f(r['jvm_peak_mib'], 0)} | "
                         f"{_f(r['jvm_live_heap_mib'], 0)} | {_f(r['python_peak_mib'], 0)} |")
    lines += ["", f"Spark listener-bus dropped events (all jobs): {s['dropped_events']}"]
    return "\n".join(lines)


def _of(part: Any, whole: Any) -> str:
    return "?" if part is None or whole is None else f"{part}/{whole}"


def _render_peers(peers: dict[str, Any]) -> str:
    """The peer table: per workload, pipetrace and OpenLineage measured in the same process."""
    lines = ["| workload | capture | wall ratio vs off (median) | listener-thread ms (Spark's "
             "timer) | listener / wall | dropped events | actions | recorded | rows present "
             "| rows true |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in peers.items():
        for label, key, unit in (("pipetrace", "pipetrace", "steps"),
                                 (f"OpenLineage {row['version']}", "openlineage",
                                  "COMPLETE events")):
            c = row[key]
            lines.append(f"| {name} | {label} | {_f(c['ratio'])} | "
                         f"{_f(c['listener_ms_spark_timer'], 0)} | "
                         f"{_f(100 * c['listener_share'], 2)} % | {c['bus_dropped']} | "
                         f"{c['actions']} | {c['recorded']} {unit} | "
                         f"{_of(c['rows_present'], c['recorded'])} | "
                         f"{_of(c['rows_true'], c['actions'])} |")
    return "\n".join(lines)
