"""The agent's file:line on every action: thin wrappers on PySpark's public action methods.

While pipetrace is attached (``attach()``, ``pipetrace run``), each wrapped action sets Spark's
public local property ``callSite.short`` to ``"<action> at <file>:<line>"`` for the duration of
the call and restores what was there after. Spark names every SQL execution after that
property (``SparkContext.getCallSite``), so the listener reads the agent's line for count,
show, writes and SQL commands too, not only for the collects PySpark names itself. The line is
the first stack frame outside pyspark and pipetrace: a helper of the agent's that runs the
action reports the helper's line; a notebook cell reports IPython's file name for the cell.

Local properties belong to the calling thread (PySpark's pinned thread mode), so two Python
threads running actions at once each get their own line.

Example::

    >>> import pipetrace.hooks as hooks
    >>> hooks.install(); hooks.installed()
    True
    >>> hooks.uninstall(); hooks.installed()
    False
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pipetrace import agent_steps
from pipetrace.patching import Patch, framed, wrap_method

__all__ = ["CALL_SITE_PROPERTY", "agent_line", "install", "installed", "uninstall"]

CALL_SITE_PROPERTY = "callSite.short"  # Spark's CallSite.SHORT_FORM
# Spark's CallSite.LONG_FORM: an execution's details. Its description is the job description
# when the user set one (sc.setJobDescription), which hides the short form; the long one stays.
_LONG_PROPERTY = "callSite.long"

_PIPETRACE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_state = threading.local()


class _Registry:
    """What is installed: counted installs (one per live capture) and the patches."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installs = 0
        self.measuring = 0
        self.patches: list[Patch] = []


_registry = _Registry()

# (module, class, method names): the public classic PySpark actions ("": the classic
# DataFrame of this PySpark). Missing ones (older PySpark) are skipped.
_ACTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "DataFrame", (
        "count", "collect", "show", "take", "head", "first", "toPandas", "toArrow", "tail",
        "isEmpty", "foreach", "foreachPartition", "toLocalIterator", "checkpoint",
        "localCheckpoint")),
    ("pyspark.sql.readwriter", "DataFrameWriter", (
        "save", "saveAsTable", "insertInto", "parquet", "csv", "json", "orc", "text", "jdbc")),
    ("pyspark.sql.readwriter", "DataFrameWriterV2", (
        "append", "overwrite", "overwritePartitions", "create", "replace", "createOrReplace")),
    ("pyspark.sql.merge", "MergeIntoWriter", ("merge",)),
    ("pyspark.sql.session", "SparkSession", ("sql",)),
)


def _spark_dir() -> str:
    import pyspark.traceback_utils
    return os.path.dirname(os.path.abspath(pyspark.traceback_utils.__file__))


_SPARK_DIR = _spark_dir()
# Our wrappers' frames claim this file: see patching.framed (PySpark's call site skips it).
WRAPPER_FILE = os.path.join(_SPARK_DIR, "<pipetrace wrapper>")
_SKIP = (_SPARK_DIR + os.sep, _PIPETRACE_DIR, WRAPPER_FILE)


def _frames(start: Any) -> Iterator[Any]:
    frame = start
    while frame is not None:
        yield frame
        frame = frame.f_back


def agent_line(start: Any = None) -> str | None:
    """``file:line`` of the first frame outside pyspark and pipetrace (the agent's code).

    Example::

        >>> agent_line().endswith(">:1")  # the doctest's own line
        True
    """
    for frame in _frames(start or sys._getframe(1)):
        name = frame.f_code.co_filename
        if not name.startswith(_SKIP) and "/py4j/" not in name:
            return f"{name}:{frame.f_lineno}"
    return None


def depth() -> int:
    """How many pipetrace wrappers this thread is inside (0: the agent's own code)."""
    return getattr(_state, "depth", 0)


class _Inside:
    """Marks the thread as inside a wrapper, so the actions PySpark runs inside are not new."""

    def __enter__(self) -> None:
        _state.depth = depth() + 1

    def __exit__(self, *exc: object) -> None:
        _state.depth = depth() - 1


def _context() -> Any:
    from pyspark import SparkContext
    return getattr(SparkContext, "_active_spark_context", None)


def _action(label: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if depth():
            return original(*args, **kwargs)
        line = agent_line()
        sc = _context()
        previous: list[Any] = []
        set_it = False
        if line is not None and sc is not None:
            try:
                previous = [sc.getLocalProperty(p) for p in (CALL_SITE_PROPERTY, _LONG_PROPERTY)]
                for prop in (CALL_SITE_PROPERTY, _LONG_PROPERTY):
                    sc.setLocalProperty(prop, f"{label} at {line}")
                set_it = True
            except Exception:  # noqa: BLE001 - a stopped context: the action itself will say
                set_it = False
        with _Inside():
            try:
                return original(*args, **kwargs)
            finally:
                if set_it:
                    # Never fail the agent's action for this (e.g. the context was stopped).
                    with contextlib.suppress(Exception):
                        for prop, value in zip((CALL_SITE_PROPERTY, _LONG_PROPERTY), previous,
                                               strict=False):
                            sc.setLocalProperty(prop, value)
    return call


def _wrapped(label: str, make: Callable[[str, Callable[..., Any]], Callable[..., Any]],
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return lambda original: framed(label, WRAPPER_FILE, make(label, original))


def _install_all() -> list[Patch]:
    import importlib
    patches: list[Patch] = []
    for module, cls_name, names in _ACTIONS:
        try:
            cls = (agent_steps.dataframe_class() if not module
                   else getattr(importlib.import_module(module), cls_name))
        except (ImportError, AttributeError):
            continue
        for name in names:
            patch = wrap_method(cls, name, _wrapped(name, _action))
            if patch is not None:
                patches.append(patch)
    for cls, name, make in agent_steps.transformations((_Inside, agent_line, measuring, depth)):
        patch = wrap_method(cls, name, _wrapped(name, make))
        if patch is not None:
            patches.append(patch)
    return patches


def measuring() -> bool:
    """True while some capture asked to measure each agent-written filter (observed metrics)."""
    return _registry.measuring > 0


def install(*, measure_steps: bool = False) -> None:
    """Wrap PySpark's actions and transformations (counted: one :func:`uninstall` per call)."""
    with _registry.lock:
        if _registry.installs == 0:
            _registry.patches = _install_all()
        _registry.installs += 1
        _registry.measuring += 1 if measure_steps else 0


def uninstall(*, measure_steps: bool = False) -> None:
    """Undo one :func:`install`; the last one puts PySpark's methods back."""
    with _registry.lock:
        if _registry.installs == 0:
            return
        _registry.installs -= 1
        _registry.measuring = max(0, _registry.measuring - (1 if measure_steps else 0))
        if _registry.installs == 0:
            for patch in reversed(_registry.patches):
                patch.undo()
            _registry.patches = []


def installed() -> bool:
    """True while the wrappers are in place."""
    return _registry.installs > 0
