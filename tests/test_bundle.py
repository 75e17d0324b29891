"""databricks.yml stays consistent with the package: files, wheel, script, table names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from pipetrace._jvm import LISTENER_CLASS
from pipetrace.audit import QUERIES
from pipetrace.schema import TABLE_NAME

ROOT = Path(__file__).resolve().parent.parent


def _bundle() -> dict:
    return yaml.safe_load((ROOT / "databricks.yml").read_text())


def test_bundle_references_are_consistent():
    bundle = _bundle()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    job = bundle["resources"]["jobs"]["pipetrace_demo"]
    cluster = job["job_clusters"][0]["new_cluster"]
    assert set(bundle["variables"]) >= {"catalog", "schema", "warehouse_id"}
    assert cluster["spark_env_vars"]["PIPETRACE_TABLE"] == (
        "${var.catalog}.${var.schema}." + TABLE_NAME)
    script = cluster["init_scripts"][0]["workspace"]["destination"]
    script_path = script.removeprefix("${workspace.file_path}/")
    assert (ROOT / script_path).is_file()
    assert script_path in bundle["sync"]["include"]
    assert "resources/*.sh" in project["tool"]["setuptools"]["package-data"]["pipetrace"]
    text = (ROOT / script_path).read_text()
    assert LISTENER_CLASS in text and "pipetrace-*.whl" in text and "pipetrace/jars/" in text
    for task in job["tasks"]:
        if "spark_python_task" in task:
            assert (ROOT / task["spark_python_task"]["python_file"]).is_file()
            wheel = task["libraries"][0]["whl"]
            assert Path(wheel).name.startswith(project["project"]["name"] + "-")
        if "sql_task" in task:
            sql_file = ROOT / task["sql_task"]["file"]["path"]
            assert sql_file.is_file()
            assert sql_file.stem in {stem for stem, _ in QUERIES.values()}
            assert "IDENTIFIER(:steps_table)" in sql_file.read_text()
            assert task["sql_task"]["parameters"]["steps_table"].endswith("." + TABLE_NAME)
    for stem, _ in QUERIES.values():
        assert (ROOT / "python/pipetrace/resources/sql" / f"{stem}.sql").is_file()
    assert re.search(r"\./dist/", yaml.safe_dump(job))
    assert bundle["artifacts"]["pipetrace_wheel"]["type"] == "whl"
