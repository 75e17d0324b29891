-- pipetrace audit: attrition of a run (DataFusion twin of attrition.sql: unnest instead of
-- LATERAL VIEW explode, array_element instead of element_at). Parameters: :steps_table, :run_id.
SELECT seq, action, call_site, op['id'] AS operator_id, op['name'] AS operator,
       op['source'] AS source,
       array_element(op['rows_in'], 1) AS rows_in,
       array_element(op['rows_in'], 2) AS rows_in_2,
       op['rows_out'] AS rows_out,
       array_element(op['rows_in'], 1) + coalesce(array_element(op['rows_in'], 2), 0)
         - op['rows_out'] AS rows_removed,
       round(1 - CAST(op['rows_out'] AS DOUBLE) / (array_element(op['rows_in'], 1)
             + coalesce(array_element(op['rows_in'], 2), 0)), 4) AS share_removed
FROM (
  SELECT seq, action, call_site, unnest(operators) AS op
  FROM IDENTIFIER(:steps_table)
  WHERE run_id = :run_id
) AS flow
WHERE cardinality(op['rows_in']) > 0
ORDER BY seq, operator_id
