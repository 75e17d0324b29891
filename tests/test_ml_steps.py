"""Spark ML training as labelled steps (issue 12 item 9): one ``fit`` step per agent fit call,
with its stages, parameters, input, columns and line, and Spark ML's own actions linked to it
by ``parent_event_id``. Real local Spark with pyspark.ml; every value against the test's truth.
"""

from __future__ import annotations

import inspect
import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("numpy")  # pyspark.ml needs it

from pyspark.ml import Pipeline, Transformer
from pyspark.ml.base import Estimator
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import LinearRegression

import pipetrace
from pipetrace import ml
from pipetrace.spark import Handle
from tests.conftest import flushed_steps

ROWS = [(("red", "green", "blue")[i % 3], float(i), float(i * i % 7), float(i % 2))
        for i in range(60)]


@pytest.fixture
def train_path(spark: Any, tmp_path: Path) -> str:
    """A parquet file of training rows the test wrote itself."""
    path = str(tmp_path / "train")
    spark.createDataFrame(ROWS, "color string, x double, y double, label double") \
        .write.parquet(path)
    return path


def _pipeline(**lr: Any) -> Pipeline:
    return Pipeline(stages=[
        StringIndexer(inputCol="color", outputCol="color_i"),
        VectorAssembler(inputCols=["color_i", "x", "y"], outputCol="features"),
        LogisticRegression(**lr)])


def _steps_of(steps: pd.DataFrame, action: str) -> pd.DataFrame:
    return steps[steps["action"] == action]


def _inputs(step: pd.Series) -> list[dict[str, Any]]:
    """An input as it is named (a fit step carries no file identity: its scans are Spark ML's)."""
    return [{k: dict(i)[k] for k in ("kind", "name", "format", "version", "path")}
            for i in step["inputs"]]


def test_a_pipeline_fit_is_one_labelled_step(spark: Any, trace: Handle, train_path: str) -> None:
    df = spark.read.parquet(train_path)
    truth_rows = df.count()  # the agent's own actions: their steps name the input
    df.collect()  # ... and fingerprint the training DataFrame's plan
    pipeline = _pipeline(maxIter=5, regParam=0.1)
    model = pipeline.fit(df); line = inspect.currentframe().f_lineno  # noqa: E702
    scored = model.transform(df)
    predicted = scored.collect()
    scored_rows = scored.select("prediction").where("prediction >= 0").count()
    steps = flushed_steps(trace)

    fits = _steps_of(steps, "fit")
    assert len(fits) == 1
    fit = fits.iloc[0]
    assert (fit["status"], fit["error"]) == ("SUCCEEDED", None)
    assert fit["spark_func"] == "pyspark.ml.pipeline.Pipeline.fit"
    assert fit["call_site"] == f"{__file__}:{line}"
    count_step = _steps_of(steps, "count").iloc[0]
    assert count_step["rows_out"] == truth_rows == len(ROWS)
    assert _inputs(fit) == _inputs(count_step)  # named as every other step names it
    assert [i["name"] for i in _inputs(fit)] == [f"file:{train_path}"]
    collected = _steps_of(steps, "collect").iloc[0]
    assert fit["plan_fingerprint"] == collected["plan_fingerprint"]  # the same training data
    assert fit["logical_plan"] == collected["logical_plan"]

    got = fit["ml"]
    assert (got["estimator"], got["uid"]) == ("pyspark.ml.pipeline.Pipeline", pipeline.uid)
    stages = [dict(s) for s in got["stages"]]
    assert [(s["index"], s["class"], s["uid"]) for s in stages] == [
        (i, f"{type(s).__module__}.{type(s).__name__}", s.uid)
        for i, s in enumerate(pipeline.getStages())]
    lr = stages[2]
    assert dict(lr["params"])["maxIter"] == "5" and dict(lr["params"])["regParam"] == "0.1"
    assert dict(lr["params"])["elasticNetParam"] == "0.0"  # a default, recorded too
    assert list(lr["explicit_params"]) == ["maxIter", "regParam"]
    assert list(stages[1]["input_columns"]) == ["color_i", "x", "y"]
    assert list(lr["input_columns"]) == ["features", "label"]
    assert json.loads(dict(stages[1]["params"])["inputCols"]) == ["color_i", "x", "y"]
    assert list(got["input_columns"]) == ["color", "x", "y", "label"]
    assert (got["model"], got["model_uid"]) == ("pyspark.ml.pipeline.PipelineModel", model.uid)
    # Spark ML reports no count of the rows it trained on without a job: null, with the reason
    assert pd.isna(got["training_rows"])
    assert any(w.startswith("training_rows unknown") for w in fit["capture_warnings"])

    # Spark ML's own actions: the steps between the agent's collect and the fit, all linked
    inner = steps[(steps["seq"] > collected["seq"]) & (steps["seq"] < fit["seq"])]
    assert len(inner) >= 1
    assert set(inner["parent_event_id"]) == {fit["event_id"]}
    assert set(steps.loc[steps["parent_event_id"] == fit["event_id"], "seq"]) == set(inner["seq"])
    assert got["spark_jobs"] >= 1
    # the agent's own actions belong to no fit; a model's transform ran no job: no step
    after = steps[steps["seq"] > fit["seq"]]
    assert list(after["action"]) == ["collect", "count"]
    assert list(after["rows_out"]) == [len(predicted), scored_rows]
    assert after["parent_event_id"].isna().all() and count_step["parent_event_id"] is None
    assert _steps_of(steps, "transform").empty
    # ... and they name the model whose output they read, the agent's own action not
    for _, step in after.iterrows():
        assert dict(step["context"])["ml_model"] == f"pyspark.ml.pipeline.PipelineModel {model.uid}"
    assert count_step["context"] is None or "ml_model" not in dict(count_step["context"])
    assert set(spark.sparkContext.getJobTags()) == set()  # the tag is gone after the call

    # the README's query says the same from the table
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    query = readme.split("### Spark ML training", 1)[1].split("```sql", 1)[1].split("```")[0]
    (row,) = pipetrace.sql(query, table=trace.table).to_pylist()
    assert (row["seq"], row["call_site"], row["internal_steps"]) == (
        fit["seq"], fit["call_site"], len(inner))


def test_a_failing_fit_is_one_failed_step(spark: Any, trace: Handle, train_path: str) -> None:
    df = spark.read.parquet(train_path)
    pipeline = Pipeline(stages=[StringIndexer(inputCol="no_such_column", outputCol="i"),
                                LogisticRegression()])
    with pytest.raises(Exception) as raised:
        pipeline.fit(df)
    line = inspect.currentframe().f_lineno - 1
    fits = _steps_of(flushed_steps(trace), "fit")
    assert len(fits) == 1
    fit = fits.iloc[0]
    assert fit["status"] == "FAILED" and fit["call_site"] == f"{__file__}:{line}"
    assert type(raised.value).__name__ in fit["error"] and "no_such_column" in fit["error"]
    assert fit["ml"]["model"] is None and fit["ml"]["model_uid"] is None
    assert list(fit["ml"]["input_columns"]) == ["no_such_column", "features", "label"]


def test_a_lone_estimator_fit_is_one_step(spark: Any, trace: Handle, train_path: str) -> None:
    assembled = VectorAssembler(inputCols=["x", "y"], outputCol="features") \
        .transform(spark.read.parquet(train_path))  # lazy: no job, so no step
    lr = LinearRegression(labelCol="x", maxIter=3)
    model = lr.fit(assembled, {lr.regParam: 0.5}); line = inspect.currentframe().f_lineno  # noqa: E702
    steps = flushed_steps(trace)
    assert _steps_of(steps, "transform").empty
    fits = _steps_of(steps, "fit")
    assert len(fits) == 1
    fit = fits.iloc[0]
    assert fit["call_site"] == f"{__file__}:{line}" and fit["status"] == "SUCCEEDED"
    got = fit["ml"]
    assert got["estimator"] == "pyspark.ml.regression.LinearRegression"
    assert got["model"] == "pyspark.ml.regression.LinearRegressionModel"
    assert got["model_uid"] == model.uid
    (stage,) = [dict(s) for s in got["stages"]]
    assert stage["class"] == got["estimator"] and stage["uid"] == lr.uid
    # the param map given to fit() is what was fitted
    assert dict(stage["params"])["regParam"] == "0.5" and dict(stage["params"])["maxIter"] == "3"
    assert list(got["input_columns"]) == ["features", "x"]
    assert [i["name"] for i in _inputs(fit)] == [f"file:{train_path}"]
    inner = steps[steps["parent_event_id"] == fit["event_id"]]
    assert len(inner) >= 1 and (inner["seq"] < fit["seq"]).all()


class _CountingTransformer(Transformer):
    """An agent's transformer that runs a Spark job inside transform()."""

    def _transform(self, dataset: Any) -> Any:
        self.seen = dataset.count()
        return dataset


def test_a_transform_that_runs_jobs_is_a_step(spark: Any, trace: Handle, train_path: str) -> None:
    t = _CountingTransformer()
    t.transform(spark.read.parquet(train_path)); line = inspect.currentframe().f_lineno  # noqa: E702
    steps = flushed_steps(trace)
    (step,) = [s for _, s in _steps_of(steps, "transform").iterrows()]
    assert step["call_site"] == f"{__file__}:{line}" and step["ml"]["spark_jobs"] >= 1
    assert step["ml"]["model"] is None and pd.isna(step["ml"]["training_rows"])
    (inner,) = [s for _, s in steps[steps["parent_event_id"] == step["event_id"]].iterrows()]
    assert inner["action"] == "count" and inner["rows_out"] == t.seen == len(ROWS)


def test_concurrent_fits_keep_their_own_actions(spark: Any, trace: Handle,
                                                train_path: str) -> None:
    df = spark.read.parquet(train_path)
    before = flushed_steps(trace)["seq"].max()  # the fixture's write
    pipelines = [_pipeline(maxIter=2), _pipeline(maxIter=3)]
    threads = [threading.Thread(target=p.fit, args=(df,)) for p in pipelines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    steps = flushed_steps(trace)
    fits = _steps_of(steps, "fit")
    assert sorted(fits["ml"].map(lambda m: m["uid"])) == sorted(p.uid for p in pipelines)
    inner = steps[(steps["action"] != "fit") & (steps["seq"] > before)]
    # every action ran inside one of the two fits, and each fit has its own
    assert set(inner["parent_event_id"]) == set(fits["event_id"])


def test_detach_puts_the_originals_back(spark: Any, tmp_path: Path) -> None:
    before = Estimator.fit
    handle = pipetrace.attach(spark, table=str(tmp_path / "t"), spool=str(tmp_path / "s"),
                              run_id="ml-detach")
    assert ml.installed() and Estimator.fit is not before
    handle.detach()
    assert Estimator.fit is before and Transformer.transform.__name__ == "transform"


ML_SCRIPT = """
import sys
from pyspark.sql import SparkSession
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import LinearRegression
spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
df = VectorAssembler(inputCols=["x"], outputCol="features").transform(
    spark.createDataFrame([(float(i), 2.0 * i) for i in range(20)], "x double, label double"))
model = LinearRegression(maxIter=2).fit(df)
print("argv", sys.argv[1:])
"""


def test_pipetrace_run_traces_fits(tmp_path: Path) -> None:
    from tests.test_run import clean_env, cli

    script = tmp_path / "train.py"
    script.write_text(ML_SCRIPT)
    env = clean_env(tmp_path / "home")
    run = cli("run", "--run-id", "ml-run", str(script), "a1", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "argv ['a1']" in run.stdout
    rows = json.loads(cli("sql", "--format", "json",
                          "SELECT seq, action, call_site, parent_event_id, event_id, "
                          "ml.estimator AS estimator FROM pipeline_steps "
                          "WHERE run_id = 'ml-run' ORDER BY seq", env=env).stdout)
    fits = [r for r in rows if r["action"] == "fit"]
    assert [(f["estimator"], f["call_site"]) for f in fits] == [
        ("pyspark.ml.regression.LinearRegression", f"{script}:9")]
    inner = [r for r in rows if r["parent_event_id"] == fits[0]["event_id"]]
    assert inner and all(r["seq"] < fits[0]["seq"] for r in inner)

    audit = cli("audit", "models", "--run-id", "ml-run", "--format", "json", env=env)
    assert audit.returncode == 0, audit.stderr
    (model,) = json.loads(audit.stdout)
    assert (model["seq"], model["estimator"], model["internal_steps"]) == (
        fits[0]["seq"], "pyspark.ml.regression.LinearRegression", len(inner))
    assert model["model"] == "pyspark.ml.regression.LinearRegressionModel"
    assert model["training_rows"] is None and model["spark_jobs"] >= 1
