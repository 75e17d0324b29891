-- pipetrace audit: failed steps, newest first. Parameters: :steps_table.
SELECT run_id, seq, action, captured_at, call_site, error
FROM IDENTIFIER(:steps_table)
WHERE status = 'FAILED'
ORDER BY captured_at DESC, run_id, seq
