"""``python -m pipetrace``: the same as the ``pipetrace`` command."""

from __future__ import annotations

from pipetrace.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
