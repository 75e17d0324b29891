-- pipetrace audit: the steps of a run with the row flow of every operator (DataFusion twin of
-- run_steps.sql: unnest instead of LATERAL VIEW OUTER explode; unnest drops a step without
-- operators, e.g. one that failed before it ran, so those are added back with null operators).
-- Parameters: :steps_table, :run_id.
SELECT seq, action, status, step_rows_out,
       op['id'] AS operator_id, op['parent_id'] AS operator_parent_id, op['name'] AS operator,
       op['rows_out'] AS operator_rows_out, op['source'] AS operator_source
FROM (
  SELECT seq, action, status, rows_out AS step_rows_out, unnest(operators) AS op
  FROM IDENTIFIER(:steps_table)
  WHERE run_id = :run_id
) AS flow
UNION ALL
SELECT seq, action, status, rows_out AS step_rows_out, CAST(NULL AS INT) AS operator_id,
       CAST(NULL AS INT) AS operator_parent_id, CAST(NULL AS VARCHAR) AS operator,
       CAST(NULL AS BIGINT) AS operator_rows_out, CAST(NULL AS VARCHAR) AS operator_source
FROM IDENTIFIER(:steps_table)
WHERE run_id = :run_id AND (operators IS NULL OR cardinality(operators) = 0)
ORDER BY seq, operator_id
