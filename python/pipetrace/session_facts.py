"""What an ``attach()`` knows of the Python session it captures, for the run's record.

In IPython/Jupyter: the cells executed so far (IPython's input history, with their execution
counts); elsewhere: the ``__main__`` file. Plus ``sys.argv``. Written raw into the run's spool
(:mod:`pipetrace.run_record`); the Spark driver redacts it when the run closes.

Example::

    >>> notebook_cells() is None   # not inside IPython
    True
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from pipetrace import run_record

__all__ = ["main_file", "notebook_cells", "record_cells", "record_end", "record_start"]

log = logging.getLogger("pipetrace")


def _ipython() -> Any:
    module = sys.modules.get("IPython")
    if module is None:
        return None
    try:
        return module.get_ipython()
    except Exception:  # noqa: BLE001 - an IPython without a shell
        return None


def notebook_cells() -> list[dict[str, Any]] | None:
    """The cells this IPython session executed (execution_count, text), or None outside it.

    Example::

        >>> notebook_cells()  # doctest: +SKIP
        [{'execution_count': 1, 'text': 'df = spark.range(3)'}]
    """
    shell = _ipython()
    if shell is None:
        return None
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if not isinstance(history, list):
        return None
    return [{"execution_count": n, "text": str(text)}
            for n, text in enumerate(history) if n > 0 and str(text).strip()]


def main_file() -> Path | None:
    """The ``__main__`` module's file, when there is one (not in a notebook or a REPL).

    Example::

        >>> main_file() is None or main_file().is_file()
        True
    """
    if _ipython() is not None:
        return None
    name = getattr(sys.modules.get("__main__"), "__file__", None)
    path = Path(name) if isinstance(name, str) else None
    return path if path is not None and path.is_file() else None


def record_start(run_dir: Path) -> None:
    """The start of an attach()'s run: argv and the main file (hashed now)."""
    try:
        run_record.write_start(run_dir, mode="attach", argv=list(sys.argv), script=main_file())
    except OSError as exc:
        log.warning("pipetrace: cannot write run %s's record in %s (%s); its pipeline_runs "
                    "row lacks the Python side's facts", run_dir.name, run_dir, exc)


def record_cells(run_dir: Path) -> None:
    """Before detach: the notebook's cells so far join the record's Python facts."""
    cells = notebook_cells()
    if cells is None:
        return
    try:
        run_record.write_start(run_dir, mode="attach", argv=list(sys.argv), cells=cells)
    except OSError as exc:
        log.warning("pipetrace: cannot record the notebook cells of run %s (%s)",
                    run_dir.name, exc)


def record_end(run_dir: Path) -> None:
    """After detach: the session's end. An interpreter exiting on an uncaught exception (the
    exit-time detach) ended FAILED; otherwise the capture ended as asked."""
    failed = _ipython() is None and getattr(sys, "last_value", None) is not None
    try:
        if failed:
            error = sys.last_value
            run_record.write_end(run_dir, status="FAILED",
                                 end_reason=f"the interpreter exited on an uncaught "
                                            f"{type(error).__name__}")
        else:
            run_record.write_end(run_dir, status="SUCCEEDED")
    except OSError as exc:
        log.warning("pipetrace: cannot record the end of run %s (%s)", run_dir.name, exc)
