"""Wrap a method of a class and undo it later: the one place pipetrace replaces class attributes.

Used by :mod:`pipetrace.hooks` (the agent's line on every action and transformation) and by
other modules that need the same (Spark ML fit/transform). A wrapper is undone exactly: the
class gets back the attribute it had (or none, when the method was inherited).

Example::

    >>> class Greeter:
    ...     def hello(self):
    ...         return "hello"
    >>> patch = wrap_method(Greeter, "hello", lambda original: lambda self: original(self) + "!")
    >>> Greeter().hello()
    'hello!'
    >>> patch.undo()
    >>> Greeter().hello()
    'hello'
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Patch", "framed", "wrap_method"]

_MISSING = object()
_LOCK = threading.Lock()


@dataclass
class Patch:
    """One wrapped method: :meth:`undo` restores the class as it was."""

    cls: type
    name: str
    original: Any   # the class's own attribute before wrapping, or _MISSING (inherited)
    wrapper: Any

    def undo(self) -> None:
        """Put the original back, unless someone replaced our wrapper since (then leave theirs)."""
        with _LOCK:
            if self.cls.__dict__.get(self.name) is not self.wrapper:
                return
            if self.original is _MISSING:
                delattr(self.cls, self.name)
            else:
                setattr(self.cls, self.name, self.original)


def wrap_method(cls: type, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]],
                ) -> Patch | None:
    """Replace ``cls.name`` with ``make(original)``; None when ``cls`` has no such method.

    ``make`` receives the method as found on the class (inherited or its own) and returns the
    wrapper; the wrapper gets the original's name and docstring.
    """
    with _LOCK:
        found = getattr(cls, name, None)
        if found is None or not callable(found) or isinstance(cls.__dict__.get(name), property):
            return None
        own = cls.__dict__.get(name, _MISSING)
        if isinstance(own, (staticmethod, classmethod)):
            return None  # instance methods only: what a DataFrame or writer action is
        wrapper = make(found)
        functools.update_wrapper(wrapper, found)
        setattr(cls, name, wrapper)
        return Patch(cls, name, own, wrapper)


def framed(name: str, filename: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """A function named ``name`` whose frame reports ``filename``, calling ``call(*a, **kw)``.

    Tracebacks and stack inspection see one frame ``name`` in ``filename``: PySpark's own call
    site (``pyspark.traceback_utils.first_spark_call``) takes the first frame whose file is in
    the pyspark package as the Spark call and the frame before it as the user's, so a wrapper
    framed inside that package keeps PySpark's call site pointing at the user's line.
    """
    if not name.isidentifier():
        raise ValueError(f"not a function name: {name!r}")
    source = f"def {name}(*args, **kwargs):\n    return _call(*args, **kwargs)\n"
    namespace: dict[str, Any] = {"_call": call}
    exec(compile(source, os.fspath(filename), "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]
