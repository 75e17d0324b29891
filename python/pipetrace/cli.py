"""The ``pipetrace`` command line: run, ingest, recover, status, sql, steps.

``main(argv)`` returns the exit code instead of exiting, and is the one place where
exceptions become exit codes: usage and configuration errors exit 2, other pipetrace errors 1,
``pipetrace run`` exits with the script's own code, or 3 when the script succeeded but some
of its steps were dropped (and says why).

Example::

    >>> from pipetrace.cli import main
    >>> main(["sql", "--format", "csv", "SELECT count(*) AS n FROM pipeline_steps"])  # doctest: +SKIP
    n
    12
    0
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipetrace.cli_databricks import audit_cmd, databricks
from pipetrace.cli_output import cell, error_summary, json_rows
from pipetrace.cli_report import diff_cmd, report_cmd
from pipetrace.errors import ConfigError, PipetraceError, TableError
from pipetrace.report_model import short_name

__all__ = ["main"]

_RUN_CONTEXT = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def _version() -> str:
    try:
        return metadata.version("pipetrace")
    except metadata.PackageNotFoundError:
        return "0+unknown (not installed)"


def _err(message: str) -> None:
    click.echo(f"pipetrace: {message}", err=True)


def _table_flag(table: str | None) -> str:
    return f" --table {table}" if table else ""


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"pipetrace {_version()}")
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and exit.")
def cli() -> None:
    """Capture every Spark action into the Delta table pipeline_steps, and query it."""


# `pipetrace run`: the script succeeded, but some of its actions are not in the table.
EXIT_STEPS_DROPPED = 3


@cli.command("run", context_settings=_RUN_CONTEXT)
@click.option("--table", help="Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps).")
@click.option("--run-id", help="Run id (default: generated, YYYYmmdd-HHMMSS-xxxxxx).")
@click.option("--measure-steps", is_flag=True,
              help="Count each filter's rows in and out exactly (observed metrics; costs a "
                   "counting pass per filter and blocks its pushdown).")
@click.option("--spark-logs", is_flag=True,
              help="Show Spark's log lines and progress bar here (default: they go to "
                   "~/.pipetrace/logs/RUN_ID.log).")
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_cmd(*, table: str | None, run_id: str | None, measure_steps: bool, spark_logs: bool,
            script: str, args: tuple[str, ...]) -> int:
    """Run a PySpark SCRIPT with capture on; exit with its exit code.

    If the script succeeded but steps were lost (the driver could not spool them, or could not
    confirm its capture), exit 3 instead, after saying so.
    """
    from pipetrace.runner import run_script

    result = run_script(script, list(args), table=table, run_id=run_id,
                        measure_steps=measure_steps, spark_logs=spark_logs)
    if result.dropped or result.drop_reason:
        lost = f"{result.dropped} step(s) dropped" if result.dropped else "capture unconfirmed"
        _err(f"error: run {result.run_id}: {lost}: {result.drop_reason}; the table does not "
             "hold every action of the script")
    if result.commit_error:
        _err(f"warning: run {result.run_id}: its steps could not be committed to "
             f"{result.table} ({result.commit_error}); they stay in the spool. See "
             f"`pipetrace status`, fix the table, then `pipetrace recover{_table_flag(table)}`")
        return result.exit_code
    for line in run_summary(result, _table_flag(table)):
        _err(line)
    if (result.dropped or result.drop_reason) and result.exit_code == 0:
        return EXIT_STEPS_DROPPED
    return result.exit_code


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def run_summary(result: Any, table_flag: str = "") -> list[str]:
    """The lines ``pipetrace run`` ends with: what was captured, what failed, where to look.

    Example::

        >>> from pipetrace.runner import RunResult
        >>> run_summary(RunResult(0, "r1", 3, 1, "/t", failed_seqs=[2]))[:2]
        ['run r1: 3 steps captured into /t', '1 action failed (seq 2): pipetrace steps r1 shows the error']
    """
    lines = [f"run {result.run_id}: {_plural(result.steps, 'step')} captured into {result.table}"]
    if result.failed_steps:
        seqs = ", ".join(str(s) for s in result.failed_seqs[:5])
        more = ", ..." if len(result.failed_seqs) > 5 else ""
        where = f" (seq {seqs}{more})" if seqs else ""
        lines.append(f"{_plural(result.failed_steps, 'action')} failed{where}: "
                     f"pipetrace steps {result.run_id}{table_flag} shows the error")
    if result.steps:
        lines.append(f"see them with: pipetrace steps {result.run_id}{table_flag}")
    else:
        lines.append("no Spark action ran (the script never started Spark, or ran no action);"
                     " its run is in pipeline_runs: pipetrace audit run-record --run-id "
                     f"{result.run_id}{table_flag}")
    if result.log is not None:
        lines.append(f"Spark's log: {result.log}")
    return lines


@cli.command("ingest")
@click.option("--spool", help="Spool directory (default: $PIPETRACE_SPOOL or ~/.pipetrace/spool).")
@click.option("--table", help="Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps).")
@click.option("--run-id", "run_ids", multiple=True, help="Only this run (repeatable).")
def ingest_cmd(spool: str | None, table: str | None, run_ids: tuple[str, ...]) -> int:
    """Commit spooled steps into the table (exactly once)."""
    from pipetrace.ingest import ingest

    result = ingest(spool=spool, table=table, run_ids=list(run_ids) or None)
    click.echo(f"committed {result.steps} steps ({result.segments} segments, "
               f"{len(result.runs)} runs) to {result.table}")
    if result.already_committed:
        click.echo(f"cleaned up {result.already_committed} segments that were already committed")
    for skipped in result.skipped:
        _err(f"skipped run {skipped.run_id}: {skipped.reason}")
    for bad in result.quarantined:
        _err(f"quarantined {bad.path} (run {bad.run_id}): {bad.reason}")
    return 0


@cli.command("recover")
@click.option("--spool", help="Spool directory (default: $PIPETRACE_SPOOL or ~/.pipetrace/spool).")
@click.option("--table", help="Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps).")
def recover_cmd(spool: str | None, table: str | None) -> int:
    """After a crash: seal dead runs' open segments and commit every pending step once."""
    import time

    from pipetrace.recover import recover

    started = time.monotonic()
    result = recover(spool=spool, table=table)
    took = time.monotonic() - started
    click.echo(f"recovered {result.steps} steps ({result.segments} segments, "
               f"{len(result.runs)} runs) into {result.table} in {took:.2f} s")
    if result.already_committed:
        click.echo(f"cleaned up {result.already_committed} segments that were already committed")
    for skipped in result.skipped:
        _err(f"skipped run {skipped.run_id}: {skipped.reason}")
    for bad in result.quarantined:
        _err(f"quarantined {bad.path} (run {bad.run_id}): {bad.reason}")
    return 0


@cli.command("status")
@click.option("--spool", help="Spool directory (default: $PIPETRACE_SPOOL or ~/.pipetrace/spool).")
@click.option("--table", help="Only runs meant for this table (and runs that name none).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def status_cmd(spool: str | None, table: str | None, fmt: str) -> int:
    """Show what waits in the spool per run: pending steps, writer, failed commits."""
    import dataclasses

    from pipetrace.status import status

    runs = status(spool=spool, table=table)
    if fmt == "json":
        click.echo(json.dumps([dataclasses.asdict(r) for r in runs], indent=2))
        return 0
    if not runs:
        click.echo("nothing pending: the spool is empty")
        return 0
    view = Table("run", "writer", "pending steps", "segments", "quarantined", "failed commits",
                 "last error")
    for r in runs:
        segments = f"{r.sealed_segments}" + (f" + {r.open_segments} open" if r.open_segments else "")
        error = Text(_shorten(r.last_error or "", 160), style="red")
        pending = str(r.pending_steps) + (" + run record" if r.record_pending else "")
        view.add_row(r.run_id, "alive" if r.writer == "alive" else "gone", pending,
                     segments, str(r.quarantined or ""), str(r.failed_attempts or ""), error)
    Console().print(view)
    if any(r.writer != "alive" and (r.pending_steps or r.record_pending) for r in runs):
        _err(f"commit the pending steps (and run records) of finished runs with: pipetrace recover"
             f"{_table_flag(table)}")
    return 0


# A query may start with a "-- comment" line: that is SQL, not an unknown option.
@cli.command("sql", context_settings={"ignore_unknown_options": True})
@click.option("--table", help="Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.argument("query")
def sql_cmd(table: str | None, fmt: str, query: str) -> int:
    """Run a SQL QUERY; the table is called pipeline_steps."""
    from pipetrace.query import sql

    result = sql(query, table=table)
    rows = json_rows(result)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.column_names)
        writer.writerows([cell(row[name]) for name in result.column_names] for row in rows)
    else:
        view = Table(*result.column_names, show_lines=False)
        for row in rows:
            view.add_row(*(Text(cell(row[name])) for name in result.column_names))
        Console().print(view)
        _err(f"{result.num_rows} rows")
    return 0


@cli.command("steps")
@click.option("--table", help="Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps).")
@click.argument("run_id", required=False)
def steps_cmd(table: str | None, run_id: str | None) -> int:
    """Show the steps of RUN_ID (default: the latest run)."""
    from pipetrace.locations import resolve_table
    from pipetrace.query import steps

    frame = steps(run_id, table=table)
    where = resolve_table(table)
    if frame.empty:
        if run_id is not None:
            raise TableError(f"no steps for run {run_id!r} in {where}: list the runs with "
                             "pipetrace sql 'SELECT DISTINCT run_id FROM pipeline_steps'")
        click.echo(f"no steps in {where} yet: run `pipetrace run script.py` or attach(spark)")
        return 0
    records = frame.to_dict("records")
    failed = sum(1 for r in records if r["status"] == "FAILED")
    click.echo(f"run {records[0]['run_id']}: {len(records)} steps, {failed} failed · {where}")
    view = Table("seq", "action", "status", "rows", "duration", "inputs → output")
    for r in records:
        status = Text(r["status"] if isinstance(r["status"], str) else "",
                      style="red" if r["status"] == "FAILED" else "green")
        flow = Text(_flow(r["inputs"], r["output"]))
        if isinstance(r["error"], str) and r["error"]:
            flow.append("\n" + _shorten(error_summary(r["error"]), 120), style="red")
        action = r["action"] if isinstance(r["action"], str) else r["spark_func"]
        view.add_row(str(r["seq"]), str(action) if isinstance(action, str) else "", status,
                     _count(r["rows_out"]), _duration(r["duration_ms"]), flow)
    Console().print(view)
    return 0


@cli.command("verify")
@click.option("--table", help="Table path (default: $PIPETRACE_TABLE or ~/.pipetrace/pipeline_steps).")
@click.option("--key-file", type=click.Path(dir_okay=False),
              help="File holding the HMAC key the runs were captured with "
                   "(default: $PIPETRACE_HMAC_KEY).")
@click.argument("run_id", required=False)
def verify_cmd(table: str | None, key_file: str | None, run_id: str | None) -> int:
    """Check the tamper evidence of RUN_ID (default: every run); exit 1 at the first broken row."""
    from pipetrace.keys import ENV_VAR, load_key
    from pipetrace.verify import verify

    key = load_key(key_file)
    report = verify(run_id, table=table, key=key)
    if run_id is not None and report.runs == 0:
        raise TableError(f"no steps for run {run_id!r} in {report.table}")
    for broken in report.breaks:
        where = f" at seq {broken.seq}" if broken.seq is not None else ""
        _err(f"BROKEN run {broken.run_id}{where}: {broken.reason}")
    for unchecked in report.unchecked:
        _err(f"UNCHECKED run {unchecked.run_id}: {unchecked.reason}")
    if report.unanchored:
        shown = ", ".join(report.unanchored[:5]) + (", ..." if len(report.unanchored) > 5 else "")
        _err(f"note: {len(report.unanchored)} run(s) have no anchor in the Delta log (which "
             f"starts at version {report.log_start}): deleting their last rows, or all of "
             f"them, would go unnoticed: {shown}")
    if key is None:
        _err("note: checked without a key, which detects accidental and naive edits only: "
             "anyone who can write the table can recompute unkeyed hashes. Capture and verify "
             f"with a key (${ENV_VAR} or --key-file) to detect deliberate ones.")
    problems = [f"{len(report.breaks)} run(s) broken"] if report.breaks else []
    problems += [f"{len(report.unchecked)} run(s) unchecked"] if report.unchecked else []
    verdict = ", ".join(problems) or "intact"
    how = f" with key {report.key_id}" if report.key_id else ""
    click.echo(f"{report.table}: {report.runs} run(s), {report.rows} rows checked{how}: {verdict}")
    return 0 if report.ok else 1


# Databricks setup and audit queries live in their own module; registered here, explicitly.
cli.add_command(databricks)
cli.add_command(audit_cmd)
cli.add_command(report_cmd)
cli.add_command(diff_cmd)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _count(value: Any) -> str:
    return f"{int(value):,}" if _present(value) else ""


def _duration(ms: Any) -> str:
    if not _present(ms):
        return ""
    return f"{int(ms)} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _flow(inputs: Any, output: Any) -> str:
    sources = ", ".join(short_name(i) for i in (list(inputs) if inputs is not None else []))
    target = short_name(output) if isinstance(output, dict) else ""
    return f"{sources} → {target}" if target else sources


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Example::

        >>> main(["--version"])  # doctest: +SKIP
        pipetrace 0.1.0
        0
    """
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="pipetrace",
                        standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        _err("aborted")
        return 130
    except ConfigError as exc:
        _err(f"error: {exc}")
        return 2
    except PipetraceError as exc:
        _err(f"error: {exc}")
        return 1
    return code if isinstance(code, int) else 0
