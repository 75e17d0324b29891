"""How big the run report gets and how long Chromium takes to render it, for a 20-step and a
2,000-step run captured from real Spark.

One agent-style script (two setup writes, then a loop body of 18 actions: filters with the
pass's own literal, counts, collects, a join, a dedup, an aggregate, a write per pass and its
read-back, a failing cast) runs under ``pipetrace run`` once with 1 pass (20 steps) and once
with 111 passes (2,000 steps). For each run: the HTML and Markdown size, the time to build the
report (DataFusion read included), and Chromium's time to load and lay it out
(``--dump-dom``, median of 3) and to screenshot it, each beside a blank page's time measured
in the same run (Chromium's own start). The 2,000-step run is also rendered with every step
given its own call site, which defeats the loop folding: the worst case for size.

    python -m benchmarks.report_size                 # ~6 min on 2 cores (the 2,000 actions)
    python -m benchmarks.report_size --passes 1 10   # smaller
    python -m benchmarks.report_size --keep /tmp/rb  # keep the runs; again: the report alone
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = '''
import sys
from pyspark.sql import SparkSession, functions as F

work, passes = sys.argv[1], int(sys.argv[2])
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2").config("spark.sql.ansi.enabled", "true")
         .getOrCreate())
spark.range(5000).select(F.col("id"), (F.col("id") % 10).alias("v"),
                         (F.col("id") % 50).alias("g")).write.mode("overwrite").parquet(work + "/base")
spark.range(50).select(F.col("id").alias("g"), (F.col("id") % 4).alias("w"),
                       F.concat(F.lit("x"), F.col("id")).alias("label")
                       ).write.mode("overwrite").parquet(work + "/dim")
base, dim = spark.read.parquet(work + "/base"), spark.read.parquet(work + "/dim")
for it in range(passes):
    k = it % 7
    kept = base.filter(F.col("v") > k)
    kept.count()
    kept.groupBy("g").count().collect()
    joined = kept.join(dim, "g").filter(F.col("w") != k % 4)
    joined.count()
    kept.dropDuplicates(["g"]).count()
    kept.select("id").take(3)
    kept.filter(F.col("id") < 100 + it).count()
    joined.groupBy("label").agg(F.sum("id").alias("s")).orderBy("label").collect()
    base.agg(F.max("id")).collect()
    kept.isEmpty()
    dim.filter(F.col("w") == k % 4).count()
    kept.limit(5).collect()
    out = f"{work}/out/pass={it}"
    joined.groupBy("w").count().write.mode("overwrite").parquet(out)
    spark.read.parquet(out).count()
    try:
        dim.select(F.col("label").cast("int")).collect()
    except Exception:
        pass
    base.filter(F.col("g") == it % 50).count()
    kept.union(base.filter(F.col("v") == 0)).count()
    kept.select(F.avg("v")).collect()
    joined.select("label").distinct().count()
'''


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("needs Chromium: apt-get install -y chromium")
    return found


def _time_chromium(page: Path, *args: str, repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", *args, page.resolve().as_uri()],
                       capture_output=True, check=True, timeout=300)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _render_times(page: Path, shots: Path) -> dict[str, float]:
    return {"dump_dom_s": round(_time_chromium(page, "--dump-dom"), 3),
            "screenshot_s": round(_time_chromium(
                page, f"--screenshot={shots / (page.stem + '.png')}", "--window-size=1280,2000"),
                3)}


def _measure(name: str, text: str, md: str, build_s: float, folder: Path) -> dict[str, object]:
    page = folder / f"{name}.html"
    page.write_text(text, encoding="utf-8")
    return {"case": name, "html_bytes": len(text.encode()), "md_bytes": len(md.encode()),
            "build_s": round(build_s, 3), **_render_times(page, folder)}


def _has_run(table: str, run_id: str) -> bool:
    from pipetrace.errors import TableError
    from pipetrace.query import sql

    try:
        return sql(f"SELECT 1 FROM pipeline_steps WHERE run_id = '{run_id}' LIMIT 1",
                   table=table).num_rows > 0
    except TableError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, nargs="+", default=[1, 111],
                        help="loop passes per run (18 actions each, plus 2 setup writes)")
    parser.add_argument("--keep", help="keep the work folder here (its runs are reused: run "
                        "again with the same folder to measure the report alone)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "python"))
    from pipetrace import run_report
    from pipetrace.run_data import RunData, load_run

    folder = Path(args.keep or tempfile.mkdtemp(prefix="pipetrace-report-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPETRACE_")}
    env.update(PIPETRACE_HOME=str(folder / "home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"),
                                                        env.get("PYTHONPATH")])))
    script = folder / "agent_loop.py"
    script.write_text(SCRIPT)
    table = str(folder / "home" / "pipeline_steps")
    blank = folder / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    results = [{"case": "blank page", "html_bytes": blank.stat().st_size,
                **_render_times(blank, folder)}]
    for passes in args.passes:
        run_id = f"bench-{passes}"
        run_s: float | None = None
        if not _has_run(table, run_id):  # --keep a folder to measure its runs again
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "pipetrace", "run", "--run-id", run_id,
                            str(script), str(folder / f"work-{passes}"), str(passes)], env=env,
                           check=True, capture_output=True, timeout=3600)
            run_s = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        run = load_run(run_id, table=table)
        text = run_report.render(run)
        build_s = time.perf_counter() - started
        md = run_report.render(run, fmt="md")
        steps = len(run.steps)
        row = _measure(f"{steps} steps", text, md, build_s, folder)
        row["spark_run_s"] = run_s
        results.append(row)
        if steps >= 1000:  # the worst case: no loop to fold
            rows = copy.deepcopy(run.steps)
            for r in rows:
                r["call_site"] = f"{r['call_site']}#{r['seq']}"
            worst = RunData(run_id, table, rows, run.records)
            started = time.perf_counter()
            text = run_report.render(worst)
            build_s = time.perf_counter() - started
            results.append(_measure(f"{steps} steps, no loop folded", text,
                                    run_report.render(worst, fmt="md"), build_s, folder))
    for row in results:
        print(json.dumps(row))
    print(f"work folder: {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
