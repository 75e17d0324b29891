-- pipetrace audit: steps whose plan fingerprint changed since the previous run of the same job.
-- The job is the Databricks job id, else the tag "job", else the Spark app name; steps are
-- paired by seq. Parameters: :steps_table, :run_id (the newer run).
WITH runs AS (
  SELECT run_id,
         coalesce(max(context['job_id']), max(tags['job']), max(app_name)) AS job_key,
         min(captured_at) AS started_at
  FROM IDENTIFIER(:steps_table)
  GROUP BY run_id
),
previous AS (
  SELECT r.run_id
  FROM runs AS r JOIN runs AS c ON r.job_key = c.job_key AND r.started_at < c.started_at
  WHERE c.run_id = :run_id
  ORDER BY r.started_at DESC
  LIMIT 1
)
SELECT cur.seq, cur.action, prev.action AS previous_action, prev.run_id AS previous_run_id,
       prev.plan_fingerprint AS previous_fingerprint, cur.plan_fingerprint AS fingerprint
FROM IDENTIFIER(:steps_table) AS cur
JOIN IDENTIFIER(:steps_table) AS prev ON prev.seq = cur.seq
JOIN previous ON prev.run_id = previous.run_id
WHERE cur.run_id = :run_id
  AND cur.plan_fingerprint IS DISTINCT FROM prev.plan_fingerprint
ORDER BY cur.seq
