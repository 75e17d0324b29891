-- pipetrace audit: inputs -> outputs of a run (Databricks SQL). Parameters: :steps_table, :run_id.
-- Local (DataFusion) twin: lineage.datafusion.sql.
SELECT s.seq, s.action, i.kind AS input_kind, i.name AS input_name, i.format AS input_format,
       i.version AS input_version, s.output.kind AS output_kind, s.output.name AS output_name,
       s.output.format AS output_format, s.output.mode AS output_mode
FROM IDENTIFIER(:steps_table) AS s
LATERAL VIEW OUTER explode(s.inputs) AS i
WHERE s.run_id = :run_id
ORDER BY s.seq, input_name
