-- pipetrace audit: the steps of a run with the row flow of every operator (DataFusion twin of
-- run_steps.sql: unnest instead of LATERAL VIEW explode). Parameters: :steps_table, :run_id.
SELECT seq, action, status, step_rows_out,
       op['id'] AS operator_id, op['parent_id'] AS operator_parent_id, op['name'] AS operator,
       op['rows_out'] AS operator_rows_out, op['source'] AS operator_source
FROM (
  SELECT seq, action, status, rows_out AS step_rows_out, unnest(operators) AS op
  FROM IDENTIFIER(:steps_table)
  WHERE run_id = :run_id
) AS flow
ORDER BY seq, operator_id
