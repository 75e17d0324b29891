-- pipetrace audit: attrition of a run, one row per operator that has rows in and out: how many
-- rows went in (per input), came out, and the share removed (a join that multiplies rows has a
-- negative share). A count Spark cannot know is null (see capture_warnings), never 0.
-- Parameters: :steps_table, :run_id. Local (DataFusion) twin: attrition.datafusion.sql.
SELECT s.seq, s.action, s.call_site, op.id AS operator_id, op.name AS operator, op.source,
       try_element_at(op.rows_in, 1) AS rows_in,
       try_element_at(op.rows_in, 2) AS rows_in_2,
       op.rows_out,
       try_element_at(op.rows_in, 1) + coalesce(try_element_at(op.rows_in, 2), 0) - op.rows_out
         AS rows_removed,
       round(1 - op.rows_out / (try_element_at(op.rows_in, 1)
                                + coalesce(try_element_at(op.rows_in, 2), 0)), 4) AS share_removed
FROM IDENTIFIER(:steps_table) AS s
LATERAL VIEW explode(s.operators) AS op
WHERE s.run_id = :run_id AND size(op.rows_in) > 0
ORDER BY s.seq, op.id
