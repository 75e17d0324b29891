-- pipetrace audit: where one column of an output came from, followed back through the steps
-- of the run that wrote the intermediate tables and files it was read from (DataFusion twin of
-- column_lineage.sql: unnest and ['field'] instead of LATERAL VIEW explode and .field).
-- Parameters: :steps_table, :run_id, :output (the output's name as in output.name), :column.
-- One row per lineage entry met (see column_lineage in the README): depth 0 is the last
-- successful step of the run that wrote :output; an entry whose input an earlier successful
-- step of the run wrote (the last such step: written_by_seq) is followed into that step's
-- entries for input_column, plus its row-level entries (column null); an input_column that is
-- null (the input's rows, count(*)) is followed into the row-level entries only. Entries with
-- written_by_seq null are the original inputs. At most 32 steps deep; UNION ALL (Spark's
-- recursive CTEs allow no UNION) repeats an entry reached by several paths: the final DISTINCT
-- removes the repeats.
WITH RECURSIVE
steps AS (
  SELECT seq, action, output['name'] AS output_name, inputs, column_lineage
  FROM IDENTIFIER(:steps_table)
  WHERE run_id = :run_id AND status = 'SUCCEEDED'
),
edges AS (
  SELECT seq, action, output_name, CAST(e['column'] AS VARCHAR) AS output_column,
         CAST(e['input'] AS VARCHAR) AS input, CAST(e['input_kind'] AS VARCHAR) AS input_kind,
         CAST(e['input_column'] AS VARCHAR) AS input_column, CAST(e['how'] AS VARCHAR) AS how
  FROM (SELECT seq, action, output_name, unnest(column_lineage) AS e FROM steps) AS entries
),
reads AS (
  SELECT seq, i['name'] AS input FROM (SELECT seq, unnest(inputs) AS i FROM steps) AS read
),
writers AS (
  SELECT r.seq AS reader_seq, CAST(r.input AS VARCHAR) AS input, max(w.seq) AS written_by_seq
  FROM reads AS r JOIN steps AS w ON w.output_name = r.input AND w.seq < r.seq
  GROUP BY r.seq, r.input
),
hops(depth, seq, action, output_name, output_column, input, input_kind, input_column, how,
     written_by_seq) AS (
  SELECT 0, e.seq, e.action, e.output_name, e.output_column, e.input, e.input_kind,
         e.input_column, e.how, w.written_by_seq
  FROM edges AS e
  JOIN (SELECT max(seq) AS seq FROM steps WHERE output_name = :output) AS last ON e.seq = last.seq
  LEFT JOIN writers AS w ON w.reader_seq = e.seq AND w.input = e.input
  WHERE e.output_column = :column OR e.output_column IS NULL
  UNION ALL
  SELECT h.depth + 1, e.seq, e.action, e.output_name, e.output_column, e.input, e.input_kind,
         e.input_column, e.how, w.written_by_seq
  FROM hops AS h
  JOIN edges AS e ON e.seq = h.written_by_seq
       AND (e.output_column = h.input_column OR e.output_column IS NULL)
  LEFT JOIN writers AS w ON w.reader_seq = e.seq AND w.input = e.input
  WHERE h.depth < 32
)
SELECT DISTINCT depth, seq, action, output_name, output_column, input, input_kind, input_column,
       how, written_by_seq
FROM hops
ORDER BY depth, seq, output_column NULLS LAST, input NULLS LAST, input_column NULLS LAST, how
