"""CLI commands ``pipetrace report`` and ``pipetrace diff``.

cli.py adds them to its group; this module does not know cli.py, and imports the report
modules only when a command runs.
"""

from __future__ import annotations

import json

import click

__all__ = ["diff_cmd", "report_cmd"]

_TABLE_HELP = "Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps)."


@click.command("report")
@click.option("--table", help=_TABLE_HELP)
@click.option("--out", "out", type=click.Path(dir_okay=False),
              help="Write the document here (default: standard output).")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="html",
              show_default=True)
@click.option("--compare", help="Another run id: include the diff from that run to this one.")
@click.argument("run_id", required=False)
def report_cmd(table: str | None, out: str | None, fmt: str, compare: str | None,
               run_id: str | None) -> int:
    """Write the report of RUN_ID (default: the latest run): one self-contained HTML file
    (no network needed to open it) or Markdown."""
    from pathlib import Path

    from pipetrace.run_report import report

    text = str(report(run_id, table=table, format=fmt, compare=compare))  # type: ignore[arg-type]
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(text.encode('utf-8')):,} bytes)", err=True)
    else:
        click.echo(text, nl=False)
    return 0


@click.command("diff")
@click.option("--table", help=_TABLE_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "md"]), default="table",
              show_default=True)
@click.argument("run_a")
@click.argument("run_b")
def diff_cmd(table: str | None, fmt: str, run_a: str, run_b: str) -> int:
    """Compare RUN_A with RUN_B step by step: steps added/removed, plan, row and input
    changes, outputs whose content changed."""
    from pipetrace import run_diff
    from pipetrace.cli_output import jsonable_value
    from pipetrace.run_data import load_run

    result = run_diff.compare(load_run(run_a, table=table), load_run(run_b, table=table))
    if fmt == "json":
        click.echo(json.dumps(jsonable_value(result), indent=2, ensure_ascii=False))
    elif fmt == "md":
        click.echo(run_diff.to_markdown(result), nl=False)
    else:
        _print_table(result)
    return 0


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from pipetrace import run_diff

    console = Console()
    console.print(f"run {result['run_a']} → run {result['run_b']}")
    view = Table("A", "B", "action", "call site", "change", "rows A", "rows B", "ratio")
    for p in result["steps"]:
        style = {"added": "green", "removed": "red", "changed": "yellow"}.get(p["change"], "")
        view.add_row(*(str(v) if v is not None else "" for v in (
            p["seq_a"], p["seq_b"], p["action"], p["call_site"],
            ", ".join(p["changes"]) or p["change"], p["rows_a"], p["rows_b"], p["rows_ratio"])),
            style=style)
    console.print(view)
    for line in run_diff.summary_lines(result):
        console.print(line, markup=False, highlight=False)
    for p in result["steps"]:
        if p["plan_diff"]:
            console.print(f"\nstep {p['seq_a']} → {p['seq_b']}: plan diff", markup=False)
            console.print(p["plan_diff"], markup=False, highlight=False)
