-- pipetrace audit: runs overview, newest first. Parameters: :steps_table.
SELECT
  run_id,
  min(app_name) AS app_name,
  min(captured_at) AS first_step_at,
  max(captured_at) AS last_step_at,
  count(*) AS steps,
  sum(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS failed_steps,
  sum(duration_ms) AS total_duration_ms,
  max(context['job_id']) AS job_id,
  max(context['notebook_path']) AS notebook_path
FROM IDENTIFIER(:steps_table)
GROUP BY run_id
ORDER BY last_step_at DESC, run_id DESC
