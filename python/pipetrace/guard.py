"""Refuse table locations that hold someone else's data, before anything is written there.

pipetrace only ever writes to its own table. A directory that holds other files (a parquet
data set, say) or a Delta table with another schema is refused with a clear error; writing
there would turn the user's data into an audit table (a ``_delta_log`` in their parquet
folder) or merge pipetrace's columns into their Delta table.

Example::

    >>> check_location("/nonexistent/pipeline_steps")  # a new location is fine
"""

from __future__ import annotations

from pathlib import Path

from pipetrace.errors import ConfigError
from pipetrace.locations import is_local, is_table_name

__all__ = ["check_location", "is_steps_schema"]

# Columns every pipeline_steps table has had since schema version 1.
_REQUIRED = ("schema_version", "event_id", "run_id", "seq", "action", "operators", "row_hash")
_MAX_LISTED = 3


def is_steps_schema(field_names: list[str]) -> bool:
    """True when a table with these columns is a pipeline_steps table.

    Example::

        >>> is_steps_schema(["id", "name"])
        False
    """
    return all(name in field_names for name in _REQUIRED)


def check_location(table: str, *, required: tuple[str, ...] = _REQUIRED,
                   kind: str = "pipeline_steps") -> None:
    """Raise :class:`ConfigError` when ``table`` (a normalized location) holds other data.

    ``required``/``kind``: the columns and name of the table meant to be there (pipeline_runs
    passes its own).

    Local paths are checked: a file, a non-empty directory that is not a Delta table, and a
    Delta table without pipeline_steps' columns are refused. Catalog names and remote paths
    are checked by the writer that opens them.
    """
    if is_table_name(table) or not is_local(table):
        return
    path = Path(table)
    if path.is_file():
        raise ConfigError(f"the table location {table} is a file, not a directory: point "
                          "--table / PIPETRACE_TABLE at a directory for the Delta table (a new "
                          "or empty one, or an existing pipeline_steps table)")
    if not path.is_dir():
        return
    log = path / "_delta_log"
    if log.is_dir():
        names = _delta_columns(table)
        if names is not None and not all(name in names for name in required):
            raise ConfigError(
                f"{table} is a Delta table of other data (columns {', '.join(names[:8])}), not "
                f"a {kind} table: pipetrace will not write into it. Choose another "
                "location with --table / PIPETRACE_TABLE")
        return
    others = sorted(p.name for p in path.iterdir())
    if others:
        listed = ", ".join(others[:_MAX_LISTED]) + (", ..." if len(others) > _MAX_LISTED else "")
        raise ConfigError(
            f"{table} already holds other data ({listed}) and is not a Delta table: pipetrace "
            f"will not turn it into its {kind} table. Choose a new or empty directory with "
            "--table / PIPETRACE_TABLE")


def _delta_columns(table: str) -> list[str] | None:
    """The Delta table's column names (None when delta-rs cannot read it: the writer will say)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        return [f.name for f in DeltaTable(table).schema().fields]
    except (DeltaError, OSError):
        return None
