-- pipetrace audit: inputs -> outputs of a run (DataFusion twin of lineage.sql).
-- Parameters: :steps_table, :run_id.
SELECT seq, action, i['kind'] AS input_kind, i['name'] AS input_name,
       i['format'] AS input_format, i['version'] AS input_version,
       output['kind'] AS output_kind, output['name'] AS output_name,
       output['format'] AS output_format, output['mode'] AS output_mode
FROM (
  SELECT seq, action, output, unnest(inputs) AS i
  FROM IDENTIFIER(:steps_table)
  WHERE run_id = :run_id
) AS flow
ORDER BY seq, input_name
