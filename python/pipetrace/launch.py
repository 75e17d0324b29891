"""``python -m pipetrace.launch script.py args``: run a script as ``python script.py args`` would,
with pipetrace's wrappers installed in its process (how ``pipetrace run`` starts a script):
the agent's line on every action (:mod:`pipetrace.hooks`) and Spark ML fits as steps
(:mod:`pipetrace.ml`).

The script sees the same ``sys.argv``, ``sys.path[0]`` (its folder), ``__name__ == "__main__"``
and exit code. ``PIPETRACE_MEASURE_STEPS=1`` measures each filter (``--measure-steps``).

Example::

    >>> main([])  # doctest: +SKIP
    2
"""

from __future__ import annotations

import os
import runpy
import sys

from pipetrace import hooks, ml

__all__ = ["MEASURE_ENV", "main"]

MEASURE_ENV = "PIPETRACE_MEASURE_STEPS"


def main(argv: list[str] | None = None) -> int:
    """Install the wrappers, then run ``argv[0]`` with arguments ``argv[1:]`` as ``__main__``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m pipetrace.launch script.py [args...]", file=sys.stderr)
        return 2
    script = os.path.abspath(args[0])
    sys.argv = args
    sys.path[0] = os.path.dirname(script)
    hooks.install(measure_steps=os.environ.get(MEASURE_ENV) == "1")
    ml.install()
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
