"""Run every pipetrace benchmark and print the cost of capture: ``python -m benchmarks.run``.

Each job runs in its own driver process (:mod:`benchmarks.worker`), capture off and on
interleaved inside it. Prints a table of wall-time ratios (capture on / off) and writes every
figure to a JSON file.

Example::

    $ PYTHONPATH=python:. python -m benchmarks.run --quick --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import peers, report

__all__ = ["jobs", "main"]

HERE = Path(__file__).resolve().parent

# Sizes of the full run, as issue 5 asks: 2,000 count()s, TPC-H SF1 (all 22 queries), a
# 300-column plan collected 20 times, 200 parquet appends -- per mode (capture off, on). Units
# are short and interleaved over several repetitions so slow drift of the machine hits both
# modes alike: 8 blocks of 250 counts, 4 blocks of 50 appends, 3 passes of TPC-H. The deep
# plan has 16 repetitions: one is only ~0.5 s, so 4 gave medians that swung 1.04-1.10 run to run.
FULL: dict[str, dict[str, Any]] = {
    "small_counts": {"params": {"actions": 250}, "reps": 8},
    "deep_plan": {"params": {"columns": 300, "collects": 20}, "reps": 16},
    "writes": {"params": {"appends": 50}, "reps": 4},
    "growth": {"params": {"rows": [100_000, 1_000_000, 10_000_000], "columns": [30, 100, 300],
                          "actions": 3}, "reps": 3},
    "delivery": {"params": {"actions": 200, "pace_s": 0.05, "burst": 300}, "reps": 1},
    # Scale factor from --tpch-scale (default 1); one warm-up pass, then 3 interleaved passes.
    "tpch": {"params": {}, "reps": 3, "driver_memory": "8g"},
    # One failing step with a 10 MB error message vs the same with 100 chars (issue 9, item 10).
    "listener_worst_case": {"params": {"message_chars": 10 * 2**20, "kinds": ["udf", "raise_error"]},
                            "reps": 5},
}
QUICK: dict[str, dict[str, Any]] = {
    "small_counts": {"params": {"actions": 20, "warmup": False}, "reps": 1},
    "tpch": {"params": {"scale": 0.01, "queries": [1, 6], "warmup": False}, "reps": 1},
    "deep_plan": {"params": {"columns": 30, "collects": 2, "warmup": False}, "reps": 1},
    "writes": {"params": {"appends": 5, "warmup": False}, "reps": 1},
    "growth": {"params": {"rows": [1000, 10_000, 100_000], "columns": [5, 10, 20],
                          "actions": 1, "warmup": False}, "reps": 1},
    "delivery": {"params": {"actions": 10, "pace_s": 0.05, "burst": 20}, "reps": 1},
    "listener_worst_case": {"params": {"message_chars": 100_000, "kinds": ["udf", "raise_error"],
                                       "warmup": False}, "reps": 1},
}
# Spark's event log as a comparator: the same workloads in a process with the event log on.
EVENT_LOG_JOBS = ("small_counts", "deep_plan")
DEFERRED_COMMIT_JOBS = ("small_counts", "deep_plan", "writes")
# The peer users would otherwise install, OpenLineage's Spark listener: the same workloads in a
# process with it configured (static confs), off / pipetrace / OpenLineage interleaved there.
PEER_JOBS = ("small_counts", "tpch", "deep_plan", "writes")


def jobs(quick: bool, data_root: Path, tpch_scale: float = 1.0) -> list[dict[str, Any]]:
    """The job specs of one run, in the order they run (peer jobs carry ``"peer"``)."""
    sizes = QUICK if quick else FULL
    specs: list[dict[str, Any]] = []
    for job, size in sizes.items():
        params = dict(size["params"])
        if job == "tpch":
            params["data_root"] = str(data_root)
            params.setdefault("scale", tpch_scale)
        specs.append({"job": job, "name": job, "params": params, "reps": size["reps"],
                      "driver_memory": size.get("driver_memory", "4g")})
    for job in EVENT_LOG_JOBS:
        base = next(s for s in specs if s["job"] == job)
        specs.append({**base, "name": f"{job}+event_log", "event_log": True,
                      "reps": max(1, base["reps"] // 2)})
    # Diagnostic: the same jobs with Delta commits deferred to the (untimed) flush, to split
    # the listener's cost from the background committer's.
    for job in DEFERRED_COMMIT_JOBS:
        base = next(s for s in specs if s["job"] == job)
        specs.append({**base, "name": f"{job}+deferred_commit",
                      "params": {**base["params"], "commit_interval": 3600}})
    rss_params = ({"actions": 20, "columns": 10, "collects": 2} if quick
                  else {"actions": 200, "columns": 300, "collects": 5})
    for job in PEER_JOBS:
        base = next(s for s in specs if s["job"] == job)
        specs.append({**base, "name": f"{job}+openlineage", "peer": "openlineage"})
    for capture in (False, True):
        specs.append({"job": "rss", "name": f"rss_capture_{'on' if capture else 'off'}",
                      "params": {**rss_params, "capture": capture}, "reps": 1,
                      "driver_memory": "4g"})
    specs.append({"job": "rss", "name": "rss_openlineage", "peer": "openlineage",
                  "params": {**rss_params, "capture": False, "peer": True}, "reps": 1,
                  "driver_memory": "4g"})
    return specs


def _with_peer_jar(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fetch the peer's jar if a spec needs it; a spec that cannot have it gets the error."""
    if not any(s.get("peer") for s in specs):
        return specs
    try:
        jar = str(peers.fetch_openlineage())
    except peers.PeerUnavailable as exc:
        print(f"OpenLineage peer unavailable: {exc}", flush=True)
        return [s if not s.get("peer") else {**s, "unavailable": str(exc)} for s in specs]
    return [s if not s.get("peer") else {**s, "peer_jar": jar} for s in specs]


def _run_job(spec: dict[str, Any], work: Path, timeout: float) -> dict[str, Any]:
    job_dir = work / spec["name"]
    job_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "work": str(job_dir)}
    spec_file, out_file = job_dir / "spec.json", job_dir / "result.json"
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent), str(HERE.parent / "python"), env.get("PYTHONPATH", "")])
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.worker", str(spec_file),
                           str(out_file)], env=env, timeout=timeout, capture_output=True, check=False,
                          text=True)
    if proc.returncode != 0 or not out_file.is_file():
        raise RuntimeError(f"benchmark job {spec['name']} failed ({proc.returncode}):\n"
                           f"{proc.stderr[-4000:]}")
    result = json.loads(out_file.read_text())
    if "batch" not in spec:
        result["spec"] = spec
        result["process_s"] = time.perf_counter() - started
    return result


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    except OSError:
        mem_gib = 0.0
    import pyspark

    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem_gib, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "pyspark": pyspark.__version__, "java": java.splitlines()[0] if java else "?"}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print the tables; write the JSON. Returns an exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, for CI (~2.5 minutes); the figures mean nothing")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "results.json")
    parser.add_argument("--data", type=Path, default=HERE / ".data",
                        help="where TPC-H data is generated (kept between runs)")
    parser.add_argument("--tpch-scale", type=float, default=1.0,
                        help="TPC-H scale factor of the full run (quick: 0.01)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these job names")
    parser.add_argument("--peers", action="store_true",
                        help="run only the OpenLineage peer jobs and the three memory processes")
    parser.add_argument("--no-peers", action="store_true", help="skip the OpenLineage peer jobs")
    parser.add_argument("--timeout", type=float, default=3600, help="per job, seconds")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    specs = [s for s in jobs(args.quick, args.data, args.tpch_scale)
             if (not args.only or s["name"] in args.only)
             and (not args.peers or s.get("peer") or s["job"] == "rss")
             and not (args.no_peers and s.get("peer"))]
    specs = _with_peer_jar(specs)
    if args.quick:
        # CI smoke test: one process for the plain jobs, one with the event log, one with the
        # OpenLineage peer (static confs).
        plain = [s for s in specs if not s.get("event_log") and not s.get("peer")]
        peer = [s for s in specs if s.get("peer")]
        specs = [{"name": "quick", "job": "batch", "batch": plain},
                 {"name": "quick+event_log", "job": "batch", "event_log": True,
                  "batch": [s for s in specs if s.get("event_log")]}]
        if peer:
            specs.append({"name": "quick+openlineage", "job": "batch", "batch": peer,
                          **{k: peer[0][k] for k in ("peer", "peer_jar", "unavailable")
                             if k in peer[0]}})
        specs = [s for s in specs if s["batch"]]
    with tempfile.TemporaryDirectory(prefix="pipetrace-bench-") as tmp:
        for spec in specs:
            if spec.get("unavailable"):
                for name in [s["name"] for s in spec.get("batch", [spec])]:
                    results[name] = {"error": f"OpenLineage peer unavailable: "
                                              f"{spec['unavailable']}"}
                continue
            print(f"running {spec['name']} ...", flush=True)
            try:
                result = _run_job(spec, Path(tmp), args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"  {spec['name']} failed: {str(exc)[-2000:]}", flush=True)
                results[spec["name"]] = {"error": str(exc)[-4000:]}
                continue
            results.update(result if "batch" in spec else {spec["name"]: result})
    doc = {"command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None
                                                             else argv),
           "quick": args.quick, "machine": machine(), "total_s": time.perf_counter() - started,
           "summary": report.summarize(results), "jobs": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(report.render(doc))
    print(f"\nall figures: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
