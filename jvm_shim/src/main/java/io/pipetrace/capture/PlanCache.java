package io.pipetrace.capture;

import io.pipetrace.redact.Redactor;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.SparkPlan;

/**
 * What the capture of a re-run DataFrame can reuse. Running a DataFrame again reuses its
 * QueryExecution: its analyzed and optimized plans never change, and once adaptive execution
 * has settled, neither does its physical plan. Their texts, fingerprint, inputs and operator
 * descriptions are computed once per QueryExecution (and redaction); only metrics and the
 * execution's facts are read per step. On a 300-column plan that is most of the capture cost.
 *
 * <p>Weak keys: an entry lives as long as the user's DataFrame keeps its QueryExecution. Only
 * the listener thread reads and writes entries.
 */
final class PlanCache {
  private static final Map<QueryExecution, PlanCache> BY_QE =
      Collections.synchronizedMap(new WeakHashMap<>());

  final int max;
  final Redactor redactor;
  PlanText.Text logical;
  PlanText.Text optimized;
  String fingerprint;
  // Null until computed, and never kept when an input has a version that can move (Delta).
  List<Relations.Rel> inputs;
  private Object physicalOf;          // the physical plan object the text below describes
  private PlanText.Text physical;
  // Description and source of each physical operator object, for Operators.walk.
  final Map<SparkPlan, String[]> operators = new IdentityHashMap<>();

  private PlanCache(int max, Redactor redactor) {
    this.max = max;
    this.redactor = redactor;
  }

  /** The cache of this QueryExecution for this text cap and redaction (a fresh one if either changed). */
  static PlanCache of(QueryExecution qe, int max, Redactor redactor) {
    PlanCache c = BY_QE.get(qe);
    if (c == null || c.max != max || !c.redactor.equals(redactor)) {
      c = new PlanCache(max, redactor);
      BY_QE.put(qe, c);
    }
    return c;
  }

  /** The physical plan text, reused while adaptive execution keeps the same final plan. */
  PlanText.Text physical(SparkPlan executed, java.util.function.Supplier<PlanText.Text> render) {
    Object current = Operators.unwrap(executed);
    if (physical == null || physicalOf != current) {
      operators.clear();
      physical = render.get();
      physicalOf = physical == null ? null : current;
    }
    return physical;
  }

  /** True when these inputs may be reused by a later run (no input with a moving version). */
  static boolean reusable(List<Relations.Rel> rels) {
    for (Relations.Rel r : rels) {
      if (r.version != null || "delta".equalsIgnoreCase(r.format)) {
        return false;
      }
    }
    return true;
  }
}
