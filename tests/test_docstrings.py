"""The docstring examples of every pipetrace module run as tests: an example
that drifts from the code fails here. Examples that need a live Spark session or table are
marked ``# doctest: +SKIP`` and only illustrate."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pipetrace

MODULES = sorted(m.name for m in pkgutil.iter_modules(pipetrace.__path__, "pipetrace.")
                 if m.name != "pipetrace.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_examples_do_run() -> None:
    """Guard against a suite of examples that are all skipped."""
    attempted = sum(doctest.testmod(importlib.import_module(name)).attempted for name in MODULES)
    assert attempted >= 30
