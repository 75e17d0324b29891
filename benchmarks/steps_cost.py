"""What the agent-line wrappers and ``measure_steps`` cost (issue 12 items 1 and 3).

One driver process, ``local[2]``, interleaved pairs so that drift hits both sides alike:

- **call-site wrapper per action**: the wrapper's own work (find the agent's frame, read and set
  ``callSite.short``, restore it) timed alone, and ``count()`` on a small DataFrame with the
  wrappers installed vs not (no listener attached: the wrappers only);
- **step tag per transformation**: building ``df.filter(...)`` with the wrappers vs without
  (the tag is one JVM call);
- **measure_steps**: a filter/join/aggregate pipeline counted under ``attach()`` vs
  ``attach(measure_steps=True)``: the ratio of the medians, in the same run.

Example::

    python -m benchmarks.steps_cost --out /tmp/steps_cost.json [--rows 2000000] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import pipetrace
from pipetrace import hooks

__all__ = ["main"]


def _timed(f: Callable[[], Any]) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def _pairs(off: Callable[[], Any], on: Callable[[], Any], reps: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"off": [], "on": []}
    for rep in range(reps):
        order = [("off", off), ("on", on)] if rep % 2 == 0 else [("on", on), ("off", off)]
        for mode, f in order:
            samples[mode].append(_timed(f))
    return samples


def _with_hooks(f: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        hooks.install()
        try:
            return f()
        finally:
            hooks.uninstall()
    return run


def wrapper_alone(spark: Any, n: int) -> float:
    """Microseconds of the wrapper's own work per action (frame lookup + 3 JVM calls)."""
    sc = spark.sparkContext

    def once() -> None:
        line = hooks.agent_line()
        previous = sc.getLocalProperty(hooks.CALL_SITE_PROPERTY)
        sc.setLocalProperty(hooks.CALL_SITE_PROPERTY, f"count at {line}")
        sc.setLocalProperty(hooks.CALL_SITE_PROPERTY, previous)

    once()
    return _timed(lambda: [once() for _ in range(n)]) / n * 1e6


def pipeline(spark: Any, rows: int) -> Any:
    facts = spark.range(rows).withColumn("k", F.col("id") % 1000).withColumn("v", F.col("id") % 101)
    dim = spark.range(1000).withColumnRenamed("id", "dk").withColumn("g", F.col("dk") % 7)
    joined = facts.filter(F.col("v") > 10).join(dim, F.col("k") == F.col("dk"))
    return joined.filter(F.col("g") != 3).groupBy("g").agg(F.sum("v").alias("s"))


def measured_vs_not(spark: Any, rows: int, reps: int, work: Path) -> dict[str, list[float]]:
    def under(measure: bool) -> Callable[[], Any]:
        def run() -> Any:
            handle = pipetrace.attach(spark, table=str(work / f"t{measure}"),
                                      spool=str(work / "spool"), measure_steps=measure)
            try:
                return pipeline(spark, rows).count()
            finally:
                handle.detach()
        return run
    under(True)()  # warm-up
    return _pairs(under(False), under(True), reps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--actions", type=int, default=200)
    args = parser.parse_args(argv)
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    small = spark.range(0, 1000).filter("id % 3 = 0")
    small.count()
    result: dict[str, Any] = {"wrapper_us_per_action": wrapper_alone(spark, 2000)}
    counts = _pairs(lambda: [small.count() for _ in range(args.actions)],
                    _with_hooks(lambda: [small.count() for _ in range(args.actions)]), args.reps)
    result["count_ms_per_action"] = {m: statistics.median(v) / args.actions * 1e3
                                     for m, v in counts.items()}
    tags = _pairs(lambda: [small.filter("id > 1") for _ in range(args.actions)],
                  _with_hooks(lambda: [small.filter("id > 1") for _ in range(args.actions)]),
                  args.reps)
    result["filter_build_us_per_call"] = {m: statistics.median(v) / args.actions * 1e6
                                          for m, v in tags.items()}
    with tempfile.TemporaryDirectory() as work:
        measured = measured_vs_not(spark, args.rows, args.reps, Path(work))
    ratios = [on / off for on, off in zip(measured["on"], measured["off"], strict=True)]
    result["measure_steps"] = {"rows": args.rows, "samples": measured,
                               "ratio_median": statistics.median(ratios),
                               "ratio_min": min(ratios), "ratio_max": max(ratios)}
    spark.stop()
    print(json.dumps({k: v for k, v in result.items() if k != "measure_steps"}, indent=1))
    print("measure_steps ratio (median, min, max):", round(result["measure_steps"]["ratio_median"], 3),
          round(min(ratios), 3), round(max(ratios), 3))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
