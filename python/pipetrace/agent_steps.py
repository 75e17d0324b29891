"""The agent's logical steps: each filter, join, dedup, aggregate... tagged with its line.

A wrapped transformation (``df.filter(...)``, ``df.join(other, "id")``, ``dropDuplicates``...)
runs as before, then tags the logical plan node it created with the step's id, kind and the
agent's ``file:line`` (a Spark ``TreeNodeTag``, set through the JVM bridge). Spark copies tags
onto the node a rule replaces it with, and each physical operator links back to its logical
node, so the listener can name the agent's steps each operator carries (``logical_steps``,
operators' ``source``).

With measuring on (``attach(..., measure_steps=True)``), a filter also counts the rows that
reach it and leave it with Spark's observed metrics (``DataFrame.observe``): the exact rows of
that one condition, whatever the optimizer merges. It costs a pass of counting and blocks the
pushdown of that filter below the observation (see the README). Projections (select, withColumn) are not
steps: their operators name their lines from their expressions already.

Example::

    >>> kinds = {name: kind for name, kind in KINDS.items() if kind == "dedup"}
    >>> sorted(kinds)
    ['distinct', 'dropDuplicates', 'drop_duplicates']
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["KINDS", "transformations"]

log = logging.getLogger("pipetrace")

# Method name -> step kind; the JVM tags the first node of that kind from the result's root.
KINDS: dict[str, str] = {
    "filter": "filter", "where": "filter",
    "join": "join", "crossJoin": "join",
    "dropDuplicates": "dedup", "drop_duplicates": "dedup", "distinct": "dedup",
    "union": "union", "unionAll": "union", "unionByName": "union",
    "orderBy": "sort", "sort": "sort",
    "limit": "limit",
    "agg": "aggregate",
}
_GROUPED = {"agg": "aggregate", "count": "aggregate", "sum": "aggregate", "avg": "aggregate",
            "mean": "aggregate", "min": "aggregate", "max": "aggregate"}

# (inside-a-wrapper context manager class, agent_line(), measuring(), depth()): given by
# pipetrace.hooks, which imports this module (not the other way round).
Hooks = tuple[Any, Callable[[], "str | None"], Callable[[], bool], Callable[[], int]]

_ids = itertools.count(1)
_bridges: dict[int, Any] = {}
_bridges_lock = threading.Lock()
_warned: set[str] = set()


def _bridge(df: Any) -> Any:
    """The JVM bridge of ``df``'s driver (loaded once per gateway)."""
    from pipetrace._jvm import JvmBridge
    spark = df.sparkSession
    key = id(spark.sparkContext._gateway)
    with _bridges_lock:
        bridge = _bridges.get(key)
        if bridge is None:
            bridge = _bridges[key] = JvmBridge(spark)
        return bridge


def _tag(df: Any, step: dict[str, Any]) -> None:
    try:
        _bridge(df).tag_step(df, json.dumps(step))
    except Exception as exc:  # noqa: BLE001 - the agent's DataFrame matters more than a tag
        reason = type(exc).__name__
        if reason not in _warned:
            _warned.add(reason)
            log.warning("pipetrace: cannot tag the agent's steps (%s); operators keep only "
                        "their expressions' lines", str(exc).splitlines()[0][:200])


def _observed(df: Any, name: str) -> Any:
    from pyspark.sql import functions as F
    return df.observe(name, F.count(F.lit(1)).alias("rows"))


def _step(kind: str, hooks: Hooks) -> Callable[[str, Callable[..., Any]], Callable[..., Any]]:
    inside, agent_line, measuring, depth = hooks

    def make(label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if depth():
                return original(self, *args, **kwargs)
            step: dict[str, Any] = {"id": next(_ids), "kind": kind, "method": label,
                                    "source": agent_line()}
            with inside():
                if kind == "filter" and measuring():
                    names = [f"pipetrace_step_{step['id']}_in", f"pipetrace_step_{step['id']}_out"]
                    result = _observed(original(_observed(self, names[0]), *args, **kwargs),
                                       names[1])
                    step["observed"] = names
                else:
                    result = original(self, *args, **kwargs)
                df = getattr(result, "sparkSession", None) and result
                if df is not None:
                    _tag(df, step)
            return result
        return call
    return make


def dataframe_class() -> type:
    """The classic (non-Connect) DataFrame class of the installed PySpark."""
    try:  # PySpark 4: the classic implementation has its own class
        return importlib.import_module("pyspark.sql.classic.dataframe").DataFrame  # type: ignore[no-any-return]
    except ImportError:  # PySpark 3.5: the base class is the classic one
        return importlib.import_module("pyspark.sql.dataframe").DataFrame  # type: ignore[no-any-return]


def transformations(hooks: Hooks,
                    ) -> list[tuple[type, str, Callable[[str, Callable[..., Any]], Any]]]:
    """(class, method, wrapper maker) for each transformation to wrap in this PySpark.

    ``hooks`` is what pipetrace.hooks shares with the wrappers: (the context manager marking a
    thread as inside a wrapper, the agent's line, whether to measure, the thread's depth).
    """
    found: list[tuple[type, str, Callable[[str, Callable[..., Any]], Any]]] = []
    group = importlib.import_module("pyspark.sql.group").GroupedData
    for cls, kinds in ((dataframe_class(), KINDS), (group, _GROUPED)):
        for name, kind in kinds.items():
            found.append((cls, name, _step(kind, hooks)))
    return found
