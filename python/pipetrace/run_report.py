"""``pipetrace report``: one run as a document, HTML (self-contained) or Markdown.

What the document holds and how its numbers are chosen: report_model (the facts),
report_html and report_md (the two forms); the run's rows: run_data.

Example::

    >>> import pipetrace
    >>> doc = pipetrace.report("20261125-035123-a08d0d")           # doctest: +SKIP
    >>> doc.save("run.html")                                        # doctest: +SKIP
    >>> displayHTML(doc)          # Databricks; in Jupyter the object displays itself  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pipetrace import run_diff
from pipetrace.errors import ConfigError
from pipetrace.run_data import RunData, load_run

__all__ = ["HtmlReport", "render", "report"]


class HtmlReport(str):
    """The HTML document: a ``str`` (for ``displayHTML``) that IPython displays as HTML."""

    def _repr_html_(self) -> str:
        return str(self)

    def save(self, path: str | Path) -> Path:
        """Write the document to ``path`` (UTF-8) and return it."""
        target = Path(path)
        target.write_text(str(self), encoding="utf-8")
        return target


def render(run: RunData, *, fmt: Literal["html", "md"] = "html",
           compare: RunData | None = None) -> str:
    """The document for an already loaded run (and the diff against ``compare``)."""
    result = run_diff.compare(compare, run) if compare is not None else None
    if fmt == "md":
        from pipetrace.report_md import render_md

        return render_md(run) + (("\n" + run_diff.to_markdown(result)) if result else "")
    from pipetrace.report_html import render as render_html

    return render_html(run, compare=run_diff.to_html(result) if result else None)


def report(run_id: str | None = None, *, table: str | None = None,
           format: Literal["html", "md"] = "html",  # noqa: A002 - the CLI option's name
           compare: str | None = None) -> HtmlReport | str:
    """The report of run ``run_id`` (default: the latest): HTML as an :class:`HtmlReport`
    (display it, ``displayHTML`` it, or ``.save()`` it), or Markdown text with
    ``format="md"``. ``compare``: another run id; the document then includes the diff from
    that run to this one.

    Example::

        >>> html = report("20261125-035123-a08d0d", table="/tmp/pipeline_steps")  # doctest: +SKIP
        >>> html.save("/tmp/run.html")                                             # doctest: +SKIP
    """
    if format not in ("html", "md"):
        raise ConfigError(f"unknown report format {format!r}: use html or md")
    run = load_run(run_id, table=table)
    other = load_run(compare, table=table) if compare else None
    text = render(run, fmt=format, compare=other)
    return HtmlReport(text) if format == "html" else text
