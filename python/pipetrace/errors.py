"""Errors raised by pipetrace.

One root, :class:`PipetraceError`; catch it to handle anything pipetrace raises on purpose.
Every message says what to do next (which setting, which command). The CLI turns
:class:`ConfigError` into exit code 2 and every other :class:`PipetraceError` into 1.

Example::

    >>> from pipetrace.errors import PipetraceError, TableError
    >>> issubclass(TableError, PipetraceError)
    True
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "JarNotFoundError",
    "JvmError",
    "PipetraceError",
    "QueryError",
    "SparkConnectError",
    "SpoolError",
    "TableError",
    "UnsupportedModeError",
]


class PipetraceError(Exception):
    """Root of every error pipetrace raises on purpose."""


class ConfigError(PipetraceError):
    """A setting (argument, environment variable or Spark conf) is missing or invalid."""


class TableError(PipetraceError):
    """The pipeline_steps table is missing, unreadable or cannot be written."""


class QueryError(PipetraceError):
    """A SQL query against pipeline_steps failed (syntax, unknown column, ...)."""


class SpoolError(PipetraceError):
    """A spool file (manifest or segment) is unreadable or does not fit the schema."""


class SparkConnectError(PipetraceError):
    """The Spark session is a Spark Connect client, which has no driver JVM to attach to."""


class UnsupportedModeError(SparkConnectError):
    """Databricks serverless or standard (shared) access mode: Python may not reach the JVM."""


class JvmError(PipetraceError):
    """The driver JVM refused or failed an operation pipetrace needs."""


class JarNotFoundError(JvmError):
    """The listener jar is not inside the installed package."""
