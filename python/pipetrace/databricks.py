"""Databricks setup helpers: the cluster init script and its driver conf.

Example::

    >>> "spark.sql.queryExecutionListeners" in init_script(table="main.audit.pipeline_steps")
    True
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from pipetrace.schema import TABLE_NAME

__all__ = ["DEFAULT_SPOOL", "default_table", "init_script", "read_driver_conf"]

DEFAULT_SPOOL = "/local_disk0/tmp/pipetrace/spool"


def default_table(catalog: str = "main", schema: str = "default") -> str:
    """``catalog.schema.pipeline_steps``.

    Example::

        >>> default_table("main", "audit")
        'main.audit.pipeline_steps'
    """
    return f"{catalog}.{schema}.{TABLE_NAME}"


def init_script(*, table: str | None = None, spool: str | None = None) -> str:
    """The init script with ``table`` and ``spool`` as defaults (env vars still override).

    Example::

        >>> init_script(table="main.audit.steps").count("main.audit.steps")
        1
    """
    text = (resources.files("pipetrace").joinpath("resources").joinpath("init-script.sh")
            .read_text(encoding="utf-8"))
    return (text.replace("__PIPETRACE_TABLE__", table or default_table())
            .replace("__PIPETRACE_SPOOL__", spool or DEFAULT_SPOOL))


_ENTRY = re.compile(r'^\s*"([^"]+)"\s*=\s*"([^"]*)"\s*$')


def read_driver_conf(path: str | Path) -> dict[str, str]:
    """The Spark settings of a Databricks driver conf file (``[driver] { "k" = "v" }``).

    Example::

        >>> read_driver_conf("/databricks/driver/conf/00-pipetrace.conf")  # doctest: +SKIP
        {'spark.sql.queryExecutionListeners': 'io.pipetrace.PipetraceListener', ...}
    """
    conf: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _ENTRY.match(line)
        if match:
            conf[match.group(1)] = match.group(2)
    return conf
