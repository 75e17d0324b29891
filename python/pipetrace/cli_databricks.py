"""CLI commands ``pipetrace databricks ...`` and ``pipetrace audit ...``.

cli.py adds them to its group; this module does not know cli.py.
"""

from __future__ import annotations

import click

__all__ = ["audit_cmd", "databricks"]


@click.group("databricks")
def databricks() -> None:
    """Set up capture on Databricks clusters."""


@databricks.command("init-script")
@click.option("--table", help="Target table, catalog.schema.table or a path "
              "(default: main.default.pipeline_steps).")
@click.option("--spool", help="Driver-local spool directory (default: /local_disk0/tmp/pipetrace/spool).")
def init_script_cmd(table: str | None, spool: str | None) -> int:
    """Print the cluster init script (save it, e.g. to a volume, and add it to the cluster)."""
    from pipetrace.databricks import init_script

    click.echo(init_script(table=table, spool=spool), nl=False)
    return 0


@click.command("audit")
@click.option("--table", help="Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps).")
@click.option("--run-id", help="Run for run-steps, lineage, fingerprint-changes, inputs-identity "
              "(default: latest).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--show-sql", is_flag=True, help="Print the shipped SQL (Databricks dialect) instead.")
@click.argument("query", type=click.Choice(["runs", "run-steps", "failed", "lineage",
                                            "fingerprint-changes", "inputs-identity"]))
def audit_cmd(table: str | None, run_id: str | None, fmt: str, show_sql: bool, query: str) -> int:
    """Run an audit QUERY (the SQL files the Databricks bundle ships) on the local table."""
    import csv
    import json
    import sys

    from pipetrace.audit import audit, query_text
    from pipetrace.cli_output import cell, json_rows

    if show_sql:
        click.echo(query_text(query), nl=False)
        return 0
    result = audit(query, table=table, run_id=run_id)
    rows = json_rows(result)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.column_names)
        writer.writerows([cell(row[name]) for name in result.column_names] for row in rows)
    return 0
