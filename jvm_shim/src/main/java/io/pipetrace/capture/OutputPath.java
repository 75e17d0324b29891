package io.pipetrace.capture;

import io.pipetrace.redact.Redactor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.catalog.SessionCatalog;

/**
 * output.path of a write to a session-catalog table whose plan does not hold its location (a
 * managed table created by the write: saveAsTable, CTAS): looked up in the session catalog
 * after the write, on pipetrace's writer thread (a metastore call is no work for Spark's
 * listener thread), as {@link DeltaCommits} finds a Delta table's log.
 */
public final class OutputPath {
  /** Key of the pending lookup in a captured row's output (removed before it is written). */
  public static final String PENDING = "__output_path";

  private OutputPath() {}

  /** The table to look up. */
  record Pending(SessionCatalog catalog, TableIdentifier table) {}

  /** Fill output.path from the catalog, or add the reason it is unknown. Never throws. */
  @SuppressWarnings("unchecked")
  public static void complete(Map<String, Object> row, Redactor redactor) {
    Object out = row.get("output");
    if (!(out instanceof Map)) {
      return;
    }
    Object p = ((Map<String, Object>) out).remove(PENDING);
    if (!(p instanceof Pending)) {
      return;
    }
    Pending pending = (Pending) p;
    String reason;
    try {
      String path = Relations.location(pending.catalog().getTableRawMetadata(pending.table()),
          redactor);
      if (path != null) {
        ((Map<String, Object>) out).put("path", path);
        return;
      }
      reason = "the catalog holds no location for it";
    } catch (Throwable t) {
      reason = "the catalog lookup failed: " + t;
    }
    Object w = row.get("capture_warnings");
    List<Object> warnings = w instanceof List ? new ArrayList<>((List<Object>) w)
        : new ArrayList<>();
    warnings.add("output path unknown: " + reason);
    row.put("capture_warnings", warnings);
  }
}
