-- pipetrace audit: where each step of a run came from: the agent's file:line of the action
-- (call_site; a notebook cell's line on Databricks/Jupyter), the notebook or job it ran in,
-- what it wrote and its plan fingerprint. Parameters: :steps_table, :run_id.
-- The same text runs in Databricks SQL and locally (DataFusion).
SELECT seq, action, status, call_site, context['notebook_path'] AS notebook_path,
       context['job_id'] AS job_id, output['name'] AS output_name, plan_fingerprint
FROM IDENTIFIER(:steps_table)
WHERE run_id = :run_id
ORDER BY seq
