"""Where the table and the spool live.

Precedence: explicit argument, then environment (``PIPETRACE_TABLE``, ``PIPETRACE_SPOOL``),
then defaults under ``PIPETRACE_HOME`` (``~/.pipetrace``). Local table paths are normalized to
absolute paths so that the same table always has the same name; ``file://`` URIs are accepted.

Example::

    >>> resolve_table("file:///data/pipeline_steps")
    '/data/pipeline_steps'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from pipetrace.errors import ConfigError
from pipetrace.rules import BLANK, LOCAL_SCHEME, REMOTE_LOCATION
from pipetrace.rules import TABLE_NAME as _TABLE_NAME
from pipetrace.schema import TABLE_NAME

__all__ = ["home", "is_local", "is_table_name", "normalize_table", "resolve_spool",
           "resolve_table"]

# NUL and other control characters (newlines, tabs...): a typo or a pasting accident, never a path
_ILLEGAL = re.compile(r"[\x00-\x1f\x7f]")


def is_table_name(table: str) -> bool:
    """True when ``table`` is a catalog table name (``catalog.schema.table``), not a path.

    The rule: exactly three dot-separated identifiers (or `backticked` parts) and nothing
    else is a name; everything else is a path. Write ``./a.b.c`` for a local directory that
    would look like a name; use ``spark_catalog.default.t`` for a metastore table.

    Example::

        >>> is_table_name("main.audit.pipeline_steps"), is_table_name("/data/pipeline_steps")
        (True, False)
    """
    return bool(_TABLE_NAME.fullmatch(table.strip(BLANK)))


def home() -> Path:
    """pipetrace's home directory: ``$PIPETRACE_HOME`` or ``~/.pipetrace`` (absolute).

    Example::

        >>> home().is_absolute()
        True
    """
    env = os.environ.get("PIPETRACE_HOME")
    return Path(env).expanduser().resolve() if env else Path("~/.pipetrace").expanduser().resolve()


def is_local(table: str) -> bool:
    """True when ``table`` (already normalized) is a local filesystem path.

    Example::

        >>> is_local("/data/pipeline_steps"), is_local("s3://bucket/pipeline_steps")
        (True, False)
    """
    return table.startswith(LOCAL_SCHEME) or not REMOTE_LOCATION.match(table)


def normalize_table(table: str) -> str:
    """Normalize a table location: local paths and ``file://`` URIs become absolute paths.

    Remote URIs (``s3://...``) are returned unchanged, without a trailing slash.

    Example::

        >>> normalize_table("file:///data/steps/")
        '/data/steps'
    """
    text = table.strip(BLANK)
    if not text:
        raise ConfigError("the table location is empty: pass --table PATH or set PIPETRACE_TABLE")
    bad = _ILLEGAL.search(text)
    if bad:
        raise ConfigError(f"invalid table location {table!r}: it contains {bad.group()!r}, which "
                          "no file system or object store path may contain; pass a path such as "
                          "/data/audit/pipeline_steps or s3://bucket/pipeline_steps")
    if text.startswith(LOCAL_SCHEME):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"cannot use {table!r}: file:// URIs must name a local path "
                              "(file:///abs/path)")
        text = unquote(parsed.path)
    elif REMOTE_LOCATION.match(text):  # s3://, abfss://, dbfs:/; a drive letter (C:) is too short
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


def resolve_table(table: str | None, *, allow_names: bool = False) -> str:
    """The table to use: ``table`` if given, else ``$PIPETRACE_TABLE``, else the default.

    Catalog names (:func:`is_table_name`) are returned as given when ``allow_names`` (Spark's
    writer commits them); otherwise they are a :class:`ConfigError`, since delta-rs writes
    and reads paths only.

    Example::

        >>> resolve_table("relative/steps") == str(Path("relative/steps").resolve())
        True
    """
    chosen = table if table is not None else os.environ.get("PIPETRACE_TABLE") or None
    if chosen is None:
        return str(home() / TABLE_NAME)
    if is_table_name(chosen):
        if allow_names:
            return chosen.strip(BLANK)
        raise ConfigError(f"{chosen!r} is a catalog table name; this command reads and writes "
                          "Delta paths with delta-rs. Query the table with Spark or Databricks "
                          "SQL, or pass a path (write ./a.b.c for a local directory)")
    return normalize_table(chosen)


def resolve_spool(spool: str | os.PathLike[str] | None) -> Path:
    """The spool directory: ``spool`` if given, else ``$PIPETRACE_SPOOL``, else the default.

    Example::

        >>> resolve_spool("/tmp/sp")
        PosixPath('/tmp/sp')
    """
    if spool is not None and str(spool).strip(BLANK):
        # Stripped like every other setting (the JVM strips spark.pipetrace.spool too).
        return Path(str(spool).strip(BLANK)).expanduser().resolve()
    env = os.environ.get("PIPETRACE_SPOOL")
    if env:
        return Path(env).expanduser().resolve()
    return home() / "spool"
