"""A real notebook: cells run by a Jupyter kernel (ipykernel, executed with nbclient as Jupyter
runs them), attach() in one cell, actions in others. Each step names the cell and the line in it
that ran the action, and the run's record keeps the cells' text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from deltalake import DeltaTable
from nbclient import NotebookClient

from tests.test_faults import env_for

CELLS = [
    """\
import inspect, json, sys
from pyspark.sql import SparkSession
import pipetrace
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2").getOrCreate())
trace = pipetrace.attach(spark, table=TABLE, spool=SPOOL, run_id="notebook-1")""",
    """\
df = spark.range(0, 100).filter("id % 4 = 0")
here = inspect.currentframe().f_code.co_filename
n = df.count()
print(json.dumps({"cell": here, "count": n}))""",
    """\
rows = df.filter("id > 50").collect()
print(json.dumps({"cell": inspect.currentframe().f_code.co_filename, "rows": len(rows)}))""",
    "trace.detach()",
]


def _outputs(cell: Any) -> dict[str, Any]:
    text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
    return json.loads(text.strip().splitlines()[-1])


def test_a_notebook_records_cells_and_lines(tmp_path: Path, monkeypatch: Any) -> None:
    table, spool = tmp_path / "pipeline_steps", tmp_path / "spool"
    for key, value in env_for(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    setup = f"TABLE, SPOOL = {str(table)!r}, {str(spool)!r}\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup + CELLS[0])]
                                  + [nbformat.v4.new_code_cell(c) for c in CELLS[1:]])
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    counted, collected = _outputs(nb.cells[1]), _outputs(nb.cells[2])
    assert (counted["count"], collected["rows"]) == (25, 12)
    steps = sorted(DeltaTable(str(table)).to_pyarrow_table().to_pylist(), key=lambda r: r["seq"])
    # The kernel names each cell's code by a file of its own; the line is the line in the cell.
    assert [(s["action"], s["call_site"]) for s in steps] == [
        ("count", f"{counted['cell']}:3"), ("collect", f"{collected['cell']}:1")]
    assert counted["cell"] != collected["cell"]
    [run] = DeltaTable(str(tmp_path / "pipeline_runs")).to_pyarrow_table().to_pylist()
    assert (run["run_id"], run["mode"], run["status"]) == ("notebook-1", "attach", "SUCCEEDED")
    assert run["script_path"] is None  # a notebook has no main file: its cells are the code
    texts = [c["text"] for c in run["cells"]]
    assert texts[:3] == [setup + CELLS[0], CELLS[1], CELLS[2]]
    assert [c["execution_count"] for c in run["cells"]][:3] == [1, 2, 3]
