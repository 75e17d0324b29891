"""``pipetrace run``'s first code in the script's own process: installs pipetrace's Python-side
capture (Spark ML fits and transforms, :mod:`pipetrace.ml`), then runs the script as
``python script.py args`` would (``__main__``, ``sys.argv``, the script's folder first on
``sys.path``). The listener itself comes from the JVM configuration ``pipetrace run`` sets.

Example::

    $ python -m pipetrace.launch train.py --epochs 3   # what `pipetrace run train.py ...` runs
"""

from __future__ import annotations

import os
import runpy
import sys

from pipetrace import ml

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Run ``argv[0]`` as the main script with ``argv[1:]`` as its arguments, ML fits traced."""
    script, *args = sys.argv[1:] if argv is None else argv
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    ml.install()
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
