-- pipetrace audit: the record of a run (pipeline_runs) beside what pipeline_steps holds of it:
-- how it ended, what ran (script, arguments), where, with which versions and result-changing
-- settings, and whether the steps table holds every step the run captured.
-- Parameters: :runs_table, :steps_table, :run_id.
SELECT r.run_id, r.mode, r.status, r.exit_code, r.end_reason, r.started_at, r.ended_at,
       r.script_path, r.script_sha256, r.argv, r.user, r.host, r.app_id,
       r.spark_version, r.python_version, r.java_version, r.pipetrace_version,
       r.spark_conf['spark.sql.ansi.enabled'] AS ansi_enabled,
       r.spark_conf['spark.sql.session.timeZone'] AS session_time_zone,
       r.spark_conf['spark.sql.shuffle.partitions'] AS shuffle_partitions,
       r.spark_conf['spark.sql.adaptive.enabled'] AS adaptive_enabled,
       r.steps AS steps_captured, s.steps AS steps_in_table,
       r.failed_steps AS failed_steps_captured, s.failed_steps AS failed_steps_in_table
FROM IDENTIFIER(:runs_table) AS r
LEFT JOIN (
  SELECT run_id, count(*) AS steps,
         sum(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS failed_steps
  FROM IDENTIFIER(:steps_table)
  WHERE run_id = :run_id
  GROUP BY run_id
) AS s ON s.run_id = r.run_id
WHERE r.run_id = :run_id
ORDER BY r.started_at
