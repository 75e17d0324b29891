-- pipetrace audit: the steps of a run with the row flow of every operator (Databricks SQL).
-- Parameters: :steps_table, :run_id. Local (DataFusion) twin: run_steps.datafusion.sql.
SELECT s.seq, s.action, s.status, s.rows_out AS step_rows_out,
       op.id AS operator_id, op.parent_id AS operator_parent_id, op.name AS operator,
       op.rows_out AS operator_rows_out, op.source AS operator_source
FROM IDENTIFIER(:steps_table) AS s
LATERAL VIEW OUTER explode(s.operators) AS op
WHERE s.run_id = :run_id
ORDER BY s.seq, op.id
