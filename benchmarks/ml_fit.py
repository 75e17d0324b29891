"""What tracing a Spark ML fit costs (issue 12 item 9): one local session, attached throughout
(so Spark ML's internal actions are steps in both modes), the same Pipeline(StringIndexer,
VectorAssembler, LogisticRegression) fitted with the ML wrappers on and off, interleaved, the
order alternating. Prints a JSON document: the fit's wall time per mode and the wrappers' own
time on the agent's thread (``pipetrace.ml``'s begin + end, the listener-bus wait included),
measured around them.

    python -m benchmarks.ml_fit --fits 10 --rows 2000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

from pyspark.sql import SparkSession

import pipetrace
from pipetrace import ml


def _timed(samples: list[float], fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            samples.append(time.perf_counter() - t0)
    return wrapper


def _summary(xs: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(xs) * 1000, 2),
            "min_ms": round(min(xs) * 1000, 2), "max_ms": round(max(xs) * 1000, 2), "n": len(xs)}


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print its figures as JSON."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import StringIndexer, VectorAssembler

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fits", type=int, default=10, help="fits per mode")
    parser.add_argument("--rows", type=int, default=2_000)
    args = parser.parse_args(argv)
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "4").getOrCreate())
    work = tempfile.mkdtemp(prefix="pipetrace-ml-bench-")
    rows = [(("a", "b", "c")[i % 3], float(i % 97), float(i * i % 13), float(i % 2))
            for i in range(args.rows)]
    spark.createDataFrame(rows, "c string, x double, y double, label double") \
        .write.parquet(f"{work}/train")
    df = spark.read.parquet(f"{work}/train")
    pipeline = Pipeline(stages=[StringIndexer(inputCol="c", outputCol="ci"),
                                VectorAssembler(inputCols=["ci", "x", "y"], outputCol="features"),
                                LogisticRegression(maxIter=5, regParam=0.1)])
    wrapper_s: list[float] = []
    ml._Step.begin = _timed(wrapper_s, ml._Step.begin)  # type: ignore[method-assign]
    ml._Step.end = _timed(wrapper_s, ml._Step.end)  # type: ignore[method-assign]
    walls: dict[str, list[float]] = {"on": [], "off": []}
    with pipetrace.attach(spark, table=f"{work}/steps", spool=f"{work}/spool") as trace:
        pipeline.fit(df)  # warm-up, traced
        for i in range(args.fits):
            for mode in (("on", "off") if i % 2 == 0 else ("off", "on")):
                if mode == "off":
                    ml.uninstall()
                t0 = time.perf_counter()
                pipeline.fit(df)
                walls[mode].append(time.perf_counter() - t0)
                if mode == "off":
                    ml.install()
        trace.flush()
    per_fit = [a + b for a, b in zip(wrapper_s[0::2], wrapper_s[1::2], strict=True)]
    print(json.dumps({
        "fits_per_mode": args.fits, "rows": args.rows,
        "fit_wall_traced": _summary(walls["on"]), "fit_wall_untraced": _summary(walls["off"]),
        "wrapper_time_per_fit": _summary(per_fit),
    }, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
