"""``python -m pipetrace.launch script.py args``: run a script as ``python script.py args`` would,
with pipetrace's wrappers installed in its process (how ``pipetrace run`` starts a script):
the agent's line on every action (:mod:`pipetrace.hooks`) and Spark ML fits as steps
(:mod:`pipetrace.ml`).

The script sees the same ``sys.argv``, ``sys.path[0]`` (its folder), ``__name__ == "__main__"``
and exit code. ``PIPETRACE_MEASURE_STEPS=1`` measures each filter (``--measure-steps``);
``PIPETRACE_LOG_FILE`` sends PySpark's own error log lines (its JSON query-context logger) to
that file, as ``pipetrace run`` does with Spark's JVM logs.

Example::

    >>> main([])  # doctest: +SKIP
    2
"""

from __future__ import annotations

import logging
import os
import runpy
import sys

from pipetrace import hooks, ml
from pipetrace.runner import LOG_ENV, MEASURE_ENV

__all__ = ["main"]

# PySpark's loggers that print a JSON line to stderr for every failed action (PySpark 4).
_PYSPARK_LOGGERS = ("DataFrameQueryContextLogger", "SQLQueryContextLogger")


def _log_to_file(path: str) -> None:
    """PySpark's query-context loggers write to ``path`` instead of stderr."""
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:
        return  # PySpark 3.5 has no such loggers
    for name in _PYSPARK_LOGGERS:
        logger = PySparkLogger.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(logging.FileHandler(path))


def main(argv: list[str] | None = None) -> int:
    """Install the wrappers, then run ``argv[0]`` with arguments ``argv[1:]`` as ``__main__``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m pipetrace.launch script.py [args...]", file=sys.stderr)
        return 2
    script = os.path.abspath(args[0])
    sys.argv = args
    sys.path[0] = os.path.dirname(script)
    if os.environ.get(LOG_ENV):
        _log_to_file(os.environ[LOG_ENV])
    hooks.install(measure_steps=os.environ.get(MEASURE_ENV) == "1")
    ml.install()
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
