-- pipetrace audit: which inputs a run read and whether the previous run of the same job read
-- the same (DataFusion twin of inputs_identity.sql, which documents the columns).
-- Parameters: :steps_table, :run_id.
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
  SELECT run_id, seq, i['kind'] AS kind, i['name'] AS name, i['path'] AS path,
         i['format'] AS format, i['version'] AS version, i['files'] AS files,
         i['bytes'] AS bytes, i['modified_max'] AS modified_max, i['fingerprint'] AS fingerprint,
         CASE WHEN i['version'] IS NOT NULL
                THEN concat('version ', CAST(i['version'] AS VARCHAR))
              WHEN i['fingerprint'] IS NOT NULL THEN concat('sha256 ', i['fingerprint'])
         END AS identity
  FROM (
    SELECT run_id, seq, unnest(inputs) AS i
    FROM IDENTIFIER(:steps_table)
    WHERE run_id = :run_id OR run_id IN (SELECT run_id FROM previous)
  ) AS exploded
  WHERE i['kind'] NOT IN ('local', 'range', 'rdd')
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
  -- null-safe equality, spelled with coalesce: DataFusion cannot plan a full join on several
  -- IS NOT DISTINCT FROM conditions ("type_coercion")
  ON coalesce(c.name, '') = coalesce(p.name, '') AND coalesce(c.path, '') = coalesce(p.path, '')
  AND coalesce(c.identity, '') = coalesce(p.identity, '')
ORDER BY input_name, input_path, c.first_seq
