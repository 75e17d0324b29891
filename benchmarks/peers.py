"""The peer users would otherwise install, OpenLineage's Spark listener, fetched at benchmark time.

The jar comes from Maven Central through Maven into a cache outside git
(``$PIPETRACE_PEERS_CACHE``, default ``~/.cache/pipetrace/peers``); it is never committed.
The benchmark configures it as a user would (``spark.extraListeners``, the file transport) and,
to interleave it with capture off and pipetrace on inside one driver process, takes that same
listener instance off Spark's listener bus between its units (as ``detach()`` does for
pipetrace's). Run on its own to fetch the jar::

    $ python -m benchmarks.peers
    /root/.cache/pipetrace/peers/openlineage-spark_2.13-1.53.0.jar
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jvm_shim"))
import test_jars

__all__ = ["LISTENER", "VERSION", "Peer", "PeerUnavailable", "Switch", "fetch_openlineage",
           "openlineage_conf", "read_events", "summarize_events"]

# The newest openlineage-spark_2.13 on Maven Central on 2026-11-27 (1.54.0 is not published
# for Spark; the Python client is): see jvm_shim/test_jars.py.
VERSION = test_jars.OPENLINEAGE_VERSION
LISTENER = "io.openlineage.spark.agent.OpenLineageSparkListener"


# The peer's jar is one of the test jars (jvm_shim/test_jars.py fetches every Maven jar).
PeerUnavailable = test_jars.JarsUnavailable


def cache_dir() -> Path:
    """Where fetched peer jars live: ``$PIPETRACE_PEERS_CACHE`` or ``~/.cache/pipetrace/peers``."""
    return Path(os.environ.get("PIPETRACE_PEERS_CACHE",
                               Path.home() / ".cache" / "pipetrace" / "peers"))


def fetch_openlineage(cache: Path | None = None) -> Path:
    """The OpenLineage Spark jar, fetched with Maven on first use (idempotent).

    It is a shaded jar: the OpenLineage client, Jackson, HTTP and the file transport are inside,
    so it needs no other jar next to Spark's. Raises :class:`PeerUnavailable` (with what to
    install or set) when it cannot be fetched; set PIPETRACE_PEERS_CACHE to a folder holding it.

    Example::

        >>> fetch_openlineage().name  # doctest: +SKIP
        'openlineage-spark_2.13-1.53.0.jar'
    """
    (jar,) = test_jars.fetch("openlineage", cache or cache_dir())
    return jar


def openlineage_conf(jar: Path, events: Path) -> dict[str, str]:
    """The Spark settings a user sets to run OpenLineage with its file transport."""
    return {"spark.driver.extraClassPath": str(jar),
            "spark.extraListeners": LISTENER,
            "spark.openlineage.transport.type": "file",
            "spark.openlineage.transport.location": str(events),
            "spark.openlineage.namespace": "pipetrace-bench"}


class Switch:
    """Takes the OpenLineage listener that ``spark.extraListeners`` registered off the bus and
    puts it back: the same instance, so it keeps the state it built at application start."""

    def __init__(self, spark: Any) -> None:
        self._sc = spark.sparkContext._jsc.sc()
        found = [x for x in self._sc.listenerBus().listeners().toArray()
                 if x.getClass().getName() == LISTENER]
        if len(found) != 1:
            raise RuntimeError(f"expected one {LISTENER} on the listener bus, found {len(found)}:"
                               " is the jar on spark.driver.extraClassPath?")
        self._listener = found[0]
        self.on = True

    def set(self, on: bool) -> None:
        """Put the listener on the bus (``True``) or take it off (``False``)."""
        if on and not self.on:
            self._sc.addSparkListener(self._listener)
        elif not on and self.on:
            self._sc.removeSparkListener(self._listener)
        self.on = on


class Peer:
    """The OpenLineage listener of this driver process: its switch, and what it recorded in a
    phase (its events file and Spark's timer of its listener class)."""

    def __init__(self, spark: Any, events: Path) -> None:
        self.switch = Switch(spark)
        self.events = events

    def mark(self, spark: Any) -> dict[str, Any]:
        """Where the events file and the listener's timer stand before a phase."""
        from benchmarks.harness import dropped_events, listener_timers

        return {"offset": self.events.stat().st_size if self.events.is_file() else 0,
                "timers": listener_timers(spark, (LISTENER,)), "dropped": dropped_events(spark)}

    def recorded(self, spark: Any, mark: dict[str, Any], truth: list[int] | None
                 ) -> dict[str, Any]:
        """What OpenLineage recorded since ``mark``, against the actions' true row counts, and
        its listener-thread time (Spark's timer: events handled x their mean)."""
        from benchmarks.harness import dropped_events, listener_timers, timer_delta

        events, _ = read_events(self.events, mark["offset"])
        timer = timer_delta(mark["timers"], listener_timers(spark, (LISTENER,)))
        got = summarize_events(events)
        rows = got.pop("row_counts")
        return {**got, "actions": len(truth) if truth is not None else None,
                "rows_present": len(rows),
                "rows_true": (sum(a == b for a, b in zip(rows, truth, strict=False))
                              if truth is not None and len(rows) == len(truth)
                              else 0 if truth is not None and not rows else None),
                "spark_timer": timer, "bus_dropped": dropped_events(spark) - mark["dropped"]}


def read_events(path: Path, start: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The events the file transport appended after byte ``start``, and the new end offset."""
    if not path.is_file():
        return [], start
    with path.open("rb") as f:
        f.seek(start)
        data = f.read()
    # The transport writes one JSON event per line; a line not ended yet is left for later.
    complete = data[:data.rfind(b"\n") + 1]
    events = [json.loads(line) for line in complete.splitlines() if line.strip()]
    return events, start + len(complete)


def summarize_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What OpenLineage recorded: run events per kind, and the row counts of its outputs.

    Events of a SQL execution carry a ``parent`` run facet (the application's run); the
    application's own START/COMPLETE do not, and are not actions.
    """
    actions = [e for e in events if "parent" in (e.get("run", {}).get("facets") or {})]
    complete = [e for e in actions if e.get("eventType") == "COMPLETE"]
    row_counts = []
    for e in complete:
        for out in e.get("outputs") or []:
            stats = (out.get("outputFacets") or {}).get("outputStatistics") or {}
            if stats.get("rowCount") is not None:
                row_counts.append(int(stats["rowCount"]))
    return {"events": len(events),
            "by_type": {t: sum(1 for e in actions if e.get("eventType") == t)
                        for t in ("START", "RUNNING", "COMPLETE", "FAIL", "ABORT")},
            "complete": len(complete),
            "runs": len({e["run"]["runId"] for e in actions}),
            "jobs": sorted({e["job"]["name"] for e in complete}),
            "row_counts": row_counts}


def main() -> int:
    try:
        print(fetch_openlineage())
    except PeerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
