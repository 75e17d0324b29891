"""Run anchors: the seq and row_hash of a run's last committed step, kept outside its rows.

Every commit of a run's steps carries, in the Delta commit info (``userMetadata``, which both
delta-rs and Spark's Delta writer record), the run's anchor as of that commit. Rows can be
deleted or rewritten by a later Delta commit; the commits already in the log are not changed
by it. So `pipetrace verify` catches a run whose last rows, or whole self, were deleted after
they were committed, which the hash chain alone cannot show. Anchors last as long as the Delta
log keeps the commit (``delta.logRetentionDuration``, 30 days by default) and no longer than
whoever can write the log's files allows.

The format is shared with jvm_shim's Anchor.java (golden copy in tests/fixtures/tamper.json).

Example::

    >>> text = user_metadata("r1", 4, "ab" * 32, None)
    >>> from_commit({"version": 7, "userMetadata": text})
    Anchor(run_id='r1', seq=4, row_hash='abab...', key_id=None, version=7)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deltalake import DeltaTable

__all__ = ["Anchor", "from_commit", "read_anchors", "user_metadata"]

_FIELD = "pipetrace_anchor"


@dataclass(frozen=True)
class Anchor:
    """One commit's record of where its run stood: its last seq and that step's row_hash."""

    run_id: str
    seq: int
    row_hash: str
    key_id: str | None
    version: int  # the Delta version of the commit that carries it


def user_metadata(run_id: str, seq: int, row_hash: str, key_id: str | None) -> str:
    """The commit info ``userMetadata`` of a commit whose run's last step is ``seq``.

    Example::

        >>> user_metadata("r1", 2, "00", "feadf1de7459ee75")
        '{"pipetrace_anchor":{"run_id":"r1","seq":2,"row_hash":"00","key_id":"feadf1de7459ee75"}}'
    """
    anchor = {"run_id": run_id, "seq": seq, "row_hash": row_hash, "key_id": key_id}
    return json.dumps({_FIELD: anchor}, separators=(",", ":"), ensure_ascii=False)


def from_commit(info: dict[str, Any]) -> Anchor | None:
    """The anchor a commit info (an entry of ``DeltaTable.history()``) carries, if any.

    Example::

        >>> from_commit({"version": 3, "operation": "DELETE"}) is None
        True
    """
    text = info.get("userMetadata")
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # someone else's userMetadata
    anchor = data.get(_FIELD) if isinstance(data, dict) else None
    if not isinstance(anchor, dict):
        return None
    run_id, seq, row_hash = anchor.get("run_id"), anchor.get("seq"), anchor.get("row_hash")
    key = anchor.get("key_id")
    if not (isinstance(run_id, str) and isinstance(seq, int) and isinstance(row_hash, str)
            and (key is None or isinstance(key, str))):
        return None
    return Anchor(run_id, seq, row_hash, key, int(info.get("version", -1)))


def read_anchors(dt: DeltaTable) -> tuple[dict[str, list[Anchor]], int | None]:
    """Every anchor in the table's Delta log by run (ascending seq), and the log's first version.

    The whole log is read (one small file per commit): a first version above 0 means older
    commits, and the anchors in them, have been cleaned up.

    Example::

        >>> anchors, first = read_anchors(DeltaTable("/tmp/pipeline_steps"))  # doctest: +SKIP
        >>> first, [a.seq for a in anchors["20261125-035123-a08d0d"]]  # doctest: +SKIP
        (0, [2, 4])
    """
    by_run: dict[str, list[Anchor]] = {}
    first: int | None = None
    for info in dt.history():
        version = info.get("version")
        if isinstance(version, int):
            first = version if first is None else min(first, version)
        anchor = from_commit(info)
        if anchor is not None:
            by_run.setdefault(anchor.run_id, []).append(anchor)
    for anchors in by_run.values():
        anchors.sort(key=lambda a: (a.seq, a.version))
    return by_run, first
