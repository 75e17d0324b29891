"""The context column: Databricks facts from Spark conf and local properties, null elsewhere."""

from __future__ import annotations

from tests.conftest import flushed_steps

LOCAL = {
    "spark.databricks.notebook.path": "/Users/ana@example.com/agent",
    "spark.databricks.job.id": "123",
    "spark.databricks.job.runId": "456",
    "spark.databricks.task.taskKey": "features",
    "user": "ana@example.com",
}
CONF = {
    "spark.databricks.clusterUsageTags.clusterId": "0101-120000-abcd1234",
    "spark.databricks.clusterUsageTags.clusterOwnerOrgId": "987654321",
}


def test_context_is_null_off_databricks(spark, trace):
    spark.range(3).count()
    assert flushed_steps(trace)["context"].tolist() == [None]


def test_context_reads_local_properties_and_conf(spark, trace):
    sc = spark.sparkContext
    for key, value in LOCAL.items():
        sc.setLocalProperty(key, value)
    for key, value in CONF.items():
        spark.conf.set(key, value)
    try:
        spark.range(5).selectExpr("id % 2 AS k").groupBy("k").count().collect()
    finally:
        for key in LOCAL:
            sc.setLocalProperty(key, None)
        for key in CONF:
            spark.conf.unset(key)
    spark.range(1).count()
    contexts = flushed_steps(trace)["context"].tolist()
    assert dict(contexts[0]) == {
        "workspace_id": "987654321", "cluster_id": "0101-120000-abcd1234",
        "notebook_path": "/Users/ana@example.com/agent", "job_id": "123", "job_run_id": "456",
        "task_key": "features", "user": "ana@example.com"}
    assert contexts[1] is None
