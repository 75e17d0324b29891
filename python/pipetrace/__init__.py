"""pipetrace: every Spark action an agent's PySpark code runs, captured into a Delta table.

Example::

    >>> import pipetrace
    >>> trace = pipetrace.attach(spark)          # doctest: +SKIP
    >>> pipetrace.steps(trace.run_id)            # doctest: +SKIP
    >>> pipetrace.report(trace.run_id)           # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from pipetrace.errors import PipetraceError
from pipetrace.ingest import ingest
from pipetrace.query import sql, steps
from pipetrace.run_diff import diff
from pipetrace.run_report import report
from pipetrace.spark import Handle, attach

try:
    __version__ = version("pipetrace")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+dev"

__all__ = ["Handle", "PipetraceError", "__version__", "attach", "diff", "ingest", "report", "sql",
           "steps"]
