-- pipetrace audit: the Spark ML fits of a run, and its transforms that ran Spark jobs
-- (Databricks SQL). Parameters: :steps_table, :run_id. Each with what was fitted, the model,
-- the agent's line, and how many of Spark ML's own actions ran inside it (the steps whose
-- parent_event_id is its event_id). Inputs and stages: the step's inputs and ml.stages.
SELECT f.seq, f.action, f.status, f.ml.estimator AS estimator, f.ml.model AS model,
       f.ml.model_uid AS model_uid, f.ml.training_rows AS training_rows,
       f.ml.spark_jobs AS spark_jobs, f.duration_ms, f.call_site, f.plan_fingerprint,
       count(i.event_id) AS internal_steps
FROM IDENTIFIER(:steps_table) AS f
LEFT JOIN IDENTIFIER(:steps_table) AS i
  ON i.run_id = f.run_id AND i.parent_event_id = f.event_id
WHERE f.run_id = :run_id AND f.action IN ('fit', 'transform')
GROUP BY f.seq, f.action, f.status, f.ml.estimator, f.ml.model, f.ml.model_uid,
         f.ml.training_rows, f.ml.spark_jobs, f.duration_ms, f.call_site, f.plan_fingerprint
ORDER BY f.seq
