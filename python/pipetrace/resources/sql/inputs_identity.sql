-- pipetrace audit: which inputs (name, path, Delta version or file fingerprint) a run read, and
-- whether the previous run of the same job read the same. The job is the Databricks job id, else
-- the tag "job", else the Spark app name. One row per input and identity: "same" (the previous
-- run read it too, with that identity), "only_this_run" / "only_previous_run" (an input or an
-- identity one run read and the other did not), "unknown" (no identity recorded: see the step's
-- capture_warnings). Run B read the same inputs as run A when every row says "same".
-- Parameters: :steps_table, :run_id (the newer run). Local (DataFusion) twin:
-- inputs_identity.datafusion.sql.
WITH runs AS (
  SELECT run_id,
         coalesce(max(context['job_id']), max(tags['job']), max(app_name)) AS job_key,
         min(captured_at) AS started_at
  FROM IDENTIFIER(:steps_table)
  GROUP BY run_id
),
previous AS (
  SELECT r.run_id
  FROM runs AS r JOIN runs AS c ON r.job_key = c.job_key AND r.started_at < c.started_at
  WHERE c.run_id = :run_id
  ORDER BY r.started_at DESC
  LIMIT 1
),
read AS (
  SELECT s.run_id, s.seq, i.kind, i.name, i.path, i.format, i.version, i.files, i.bytes,
         i.modified_max, i.fingerprint,
         CASE WHEN i.version IS NOT NULL THEN concat('version ', CAST(i.version AS STRING))
              WHEN i.fingerprint IS NOT NULL THEN concat('sha256 ', i.fingerprint) END AS identity
  FROM IDENTIFIER(:steps_table) AS s
  LATERAL VIEW explode(s.inputs) AS i
  WHERE (s.run_id = :run_id OR s.run_id IN (SELECT run_id FROM previous))
    AND i.kind NOT IN ('local', 'range', 'rdd')
),
cur AS (
  SELECT kind, name, path, format, identity, max(version) AS version, max(files) AS files,
         max(bytes) AS bytes, max(modified_max) AS modified_max,
         max(fingerprint) AS fingerprint, min(seq) AS first_seq, count(*) AS steps
  FROM read WHERE run_id = :run_id
  GROUP BY kind, name, path, format, identity
),
prev AS (
  SELECT DISTINCT kind, name, path, format, identity, 1 AS seen
  FROM read WHERE run_id IN (SELECT run_id FROM previous)
)
SELECT :run_id AS run_id, (SELECT max(run_id) FROM previous) AS previous_run_id,
       coalesce(c.kind, p.kind) AS input_kind, coalesce(c.name, p.name) AS input_name,
       coalesce(c.path, p.path) AS input_path, coalesce(c.format, p.format) AS input_format,
       coalesce(c.identity, p.identity) AS identity, c.version, c.files, c.bytes,
       c.modified_max, c.fingerprint, c.first_seq, c.steps,
       CASE WHEN coalesce(c.identity, p.identity) IS NULL THEN 'unknown'
            WHEN c.steps IS NULL THEN 'only_previous_run'
            WHEN p.seen IS NULL THEN 'only_this_run'
            ELSE 'same' END AS previous_run
FROM cur AS c
FULL OUTER JOIN prev AS p
  ON c.name IS NOT DISTINCT FROM p.name AND c.path IS NOT DISTINCT FROM p.path
  AND c.identity IS NOT DISTINCT FROM p.identity
ORDER BY input_name, input_path, c.first_seq
