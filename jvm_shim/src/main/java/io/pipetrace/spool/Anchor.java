package io.pipetrace.spool;

import java.util.LinkedHashMap;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * A run's anchor: the seq and row_hash of its last committed step, recorded in the Delta commit
 * that adds the step (commit info userMetadata), outside the table's rows. Rows can be deleted
 * or rewritten with a Delta commit; the commits already in the log cannot, so `pipetrace verify`
 * catches a run whose last rows, or whole self, were deleted after their commit. The format is
 * the one python/pipetrace/anchors.py writes and reads (golden copy in
 * tests/fixtures/tamper.json): compact JSON, keys in this order.
 */
public final class Anchor {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Anchor() {}

  public static String userMetadata(String runId, long seq, String rowHash, String keyId)
      throws Exception {
    Map<String, Object> anchor = new LinkedHashMap<>();
    anchor.put("run_id", runId);
    anchor.put("seq", seq);
    anchor.put("row_hash", rowHash);
    anchor.put("key_id", keyId);
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("pipetrace_anchor", anchor);
    return JSON.writeValueAsString(m);
  }
}
