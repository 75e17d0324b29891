"""Rules the JVM shim applies too, written once in ``resources/rules.json``.

jvm_shim's ``Rules.java`` reads the same file from the jar, so a table name, a remote location,
a spool segment file and a generated run id mean the same on both sides;
``tests/fixtures/shared_rules.json`` holds the cases both must pass (``tests/test_shared_rules.py``).

Example::

    >>> bool(TABLE_NAME.fullmatch("main.audit.pipeline_steps")), bool(SEGMENT.fullmatch("seg-7.jsonl"))
    (True, False)
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

__all__ = ["BLANK", "LOCAL_SCHEME", "REMOTE_LOCATION", "RUNS_TABLE", "RUN_ID", "SEGMENT",
           "TABLE_NAME"]


def _load() -> dict[str, Any]:
    text = resources.files("pipetrace").joinpath("resources", "rules.json").read_text("utf-8")
    return dict(json.loads(text))


_RULES = _load()

#: ``catalog.schema.table``: match the whole text (``fullmatch``) after stripping ``BLANK``.
TABLE_NAME: re.Pattern[str] = re.compile(_RULES["table_name"]["pattern"])
#: A URI scheme at the start of a location: match a prefix (``match``); ``LOCAL_SCHEME`` is local.
REMOTE_LOCATION: re.Pattern[str] = re.compile(_RULES["remote_location"]["pattern"])
LOCAL_SCHEME: str = _RULES["remote_location"]["local_scheme"]
#: A spool segment file name (``fullmatch``): group 1 its number, group 2 ``.open`` if open.
SEGMENT: re.Pattern[str] = re.compile(_RULES["segment"]["pattern"])
#: The shape of a generated run id (``fullmatch``).
RUN_ID: re.Pattern[str] = re.compile(_RULES["run_id"]["pattern"])
#: The characters stripped around a setting's text (``str.strip(BLANK)``).
BLANK: str = _RULES["blank"]["chars"]
#: Where a run's record lives beside its steps table: ``steps_name``, ``runs_name``, ``suffix``.
RUNS_TABLE: dict[str, str] = {k: v for k, v in _RULES["runs_table"].items() if k != "_comment"}
#: The end of a run captured by configuration alone: ``status`` and ``end_reason`` of its row.
CONF_RUN_END: dict[str, str] = {k: v for k, v in _RULES["conf_run_end"].items()
                                if k != "_comment"}
