"""The audit queries shipped as SQL files (``resources/sql/``), run locally with DataFusion.

The same files are the Databricks bundle's SQL tasks. They use Databricks SQL's named
parameters: ``IDENTIFIER(:steps_table)`` for the table (``IDENTIFIER(:runs_table)`` for its run
records) and ``:run_id``; locally the tables are registered as ``pipeline_steps`` and
``pipeline_runs`` and parameters become quoted literals. Where the dialects differ
(``LATERAL VIEW explode`` vs ``unnest``) a ``<name>.datafusion.sql`` twin is used locally.

Example::

    >>> from pipetrace.audit import QUERIES
    >>> sorted(QUERIES)[:4]
    ['attrition', 'column-lineage', 'failed', 'fingerprint-changes']
"""

from __future__ import annotations

import re
from importlib import resources

import pyarrow as pa

from pipetrace.errors import ConfigError
from pipetrace.query import latest_run_id, sql
from pipetrace.runs_table import RUNS_TABLE_NAME
from pipetrace.schema import TABLE_NAME

__all__ = ["QUERIES", "audit", "query_text"]

# CLI name → SQL file stem; the parameters each needs besides the table.
QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "runs": ("runs", ()),
    "run-steps": ("run_steps", ("run_id",)),
    "failed": ("failed", ()),
    "lineage": ("lineage", ("run_id",)),
    "fingerprint-changes": ("fingerprint_changes", ("run_id",)),
    "attrition": ("attrition", ("run_id",)),
    "step-sources": ("step_sources", ("run_id",)),
    "column-lineage": ("column_lineage", ("run_id", "output", "column")),
    "models": ("models", ("run_id",)),
    "run-record": ("run_record", ("run_id",)),
    "inputs-identity": ("inputs_identity", ("run_id",)),
}
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


def query_text(name: str, *, dialect: str = "databricks") -> str:
    """The SQL of audit query ``name`` as shipped (``dialect``: databricks or datafusion).

    Example::

        >>> "IDENTIFIER(:steps_table)" in query_text("runs")
        True
    """
    if name not in QUERIES:
        raise ConfigError(f"unknown audit query {name!r}; choose one of {', '.join(QUERIES)}")
    folder = resources.files("pipetrace").joinpath("resources").joinpath("sql")
    stem = QUERIES[name][0]
    twin = folder.joinpath(f"{stem}.datafusion.sql")
    chosen = twin if dialect == "datafusion" and twin.is_file() else folder.joinpath(f"{stem}.sql")
    return chosen.read_text(encoding="utf-8")


def _bind(text: str, params: dict[str, str]) -> str:
    def literal(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in params:
            raise ConfigError(f"the audit query needs --{key.replace('_', '-')}")
        return "'" + params[key].replace("'", "''") + "'"

    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    local = (body.replace("IDENTIFIER(:steps_table)", TABLE_NAME)
             .replace("IDENTIFIER(:runs_table)", RUNS_TABLE_NAME))
    return _PARAM.sub(literal, local)


def audit(name: str, *, table: str | None = None, run_id: str | None = None,
          output: str | None = None, column: str | None = None) -> pa.Table:
    """Run audit query ``name`` against the local table; ``run_id`` defaults to the latest run.

    ``output`` and ``column`` are column-lineage's: an output's name as ``output.name`` records
    it, and one of its columns.

    Example::

        >>> audit("failed", table="/tmp/pipeline_steps").column_names[:3]  # doctest: +SKIP
        ['run_id', 'seq', 'action']
    """
    params: dict[str, str] = {}
    if "run_id" in QUERIES.get(name, ("", ()))[1]:
        chosen = run_id or latest_run_id(table)
        if chosen is None:
            raise ConfigError("the table has no runs yet: capture one first")
        params["run_id"] = chosen
    params.update({k: v for k, v in (("output", output), ("column", column)) if v is not None})
    return sql(_bind(query_text(name, dialect="datafusion"), params), table=table)
