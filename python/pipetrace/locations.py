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
from pipetrace.rules import BLANK, LOCAL_SCHEME, REMOTE_LOCATION, RUNS_TABLE
from pipetrace.rules import TABLE_NAME as _TABLE_NAME
from pipetrace.schema import TABLE_NAME

__all__ = ["home", "is_local", "is_table_name", "normalize_table", "resolve_spool",
           "resolve_table", "runs_table"]

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


def runs_table(steps: str) -> str:
    """The run-record table (``pipeline_runs``) beside the steps table ``steps``.

    The last name part ``pipeline_steps`` (a path's last folder, a catalog name's table)
    becomes ``pipeline_runs``; any other gets the suffix ``_runs`` (rules.json ``runs_table``,
    the JVM's ``Rules.runsTable``).

    Example::

        >>> runs_table("/data/pipeline_steps"), runs_table("main.audit.pipeline_steps")
        ('/data/pipeline_runs', 'main.audit.pipeline_runs')
        >>> runs_table("/data/audit/"), runs_table("main.a.`t.1`")
        ('/data/audit_runs', 'main.a.`t.1_runs`')
    """
    text = steps.strip(BLANK)
    name = is_table_name(text)
    if not name:
        while len(text) > 1 and text.endswith("/"):
            text = text[:-1]
    if name and text.endswith("`"):  # a backticked table part may hold dots itself
        cut = text.rfind("`", 0, len(text) - 1) - 1
    else:
        cut = text.rfind(".") if name else text.rfind("/")
    head, last = text[: cut + 1], text[cut + 1:]
    quote = "`" if name and len(last) > 1 and last.startswith("`") and last.endswith("`") else ""
    bare = last[1:-1] if quote else last
    runs = RUNS_TABLE["runs_name"] if bare == RUNS_TABLE["steps_name"] else bare + RUNS_TABLE["suffix"]
    return f"{head}{quote}{runs}{quote}"


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
