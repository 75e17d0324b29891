package io.pipetrace.capture;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

import org.apache.spark.sql.execution.FileSourceScanExec;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.UnionExec;
import org.apache.spark.sql.execution.joins.BroadcastHashJoinExec;
import org.apache.spark.sql.execution.metric.SQLMetric;

/**
 * The rows each physical operator of one execution produced, or null with the reason it cannot
 * be known. One small rule per operator family ({@link RowRules}); this class applies them over
 * a plan, memoizes, and marks the operators a limit cut short.
 *
 * <p>What a count means: the rows the operator emitted in this execution, each partition counted
 * once (see {@link io.pipetrace.tracking.ExecutionMetrics}). Operators Spark does not count
 * (Project, Sort, a shuffle read) take the count of their input where they provably keep it; a
 * limit takes min(limit, input) - offset. Below a limit that stopped early, Spark counts whole
 * batches it fetched rather than rows used, so those operators are unknown (their raw metric is
 * kept).
 */
final class OperatorRows {
  /** A count, or null with the reason. */
  static final class Known {
    final Long rows;
    final String reason;

    private Known(Long rows, String reason) {
      this.rows = rows;
      this.reason = reason;
    }

    static Known of(long rows) {
      return new Known(rows, null);
    }

    static Known unknown(String reason) {
      return new Known(null, reason);
    }

    /** No count applies (a DDL command node): null, and no warning. */
    static Known notApplicable() {
      return new Known(null, null);
    }

    static Known ofNullable(Long rows, String reason) {
      return rows != null ? of(rows) : unknown(reason);
    }
  }

  /** Metric values of this execution. */
  interface Metrics {
    /** The metric's value in this execution; null when it has none. */
    Long value(SQLMetric metric);

    /** Why {@link #value} is null: not run in this execution, or ambiguous re-runs. */
    String whyMissing(SQLMetric metric);

    /** Whether a task or the driver reported the metric in this execution. */
    default boolean reported(SQLMetric metric) {
      return value(metric) != null;
    }
  }

  private final Metrics metrics;
  private final IdentityHashMap<SparkPlan, Known> memo = new IdentityHashMap<>();
  private final IdentityHashMap<SparkPlan, String> cutShort = new IdentityHashMap<>();
  private Known firstRowOnly;
  // What each shuffle's map side wrote, by the operator that fed it: that operator ran to the end
  // in its stage and every row it emitted was written (e.g. a local limit's true output).
  private final IdentityHashMap<SparkPlan, Long> fedShuffle = new IdentityHashMap<>();

  OperatorRows(Metrics metrics) {
    this.metrics = metrics;
  }

  /** Computes the counts of every operator under {@code root} and which ones a limit cut short. */
  static OperatorRows of(SparkPlan root, Metrics metrics) {
    return of(root, metrics, null);
  }

  /**
   * As {@link #of(SparkPlan, Metrics)}, for an action that runs the root stage only partly:
   * {@code tail(n)} without a tail operator in the plan reads partitions from the last one back
   * until it has n rows.
   */
  static OperatorRows of(SparkPlan root, Metrics metrics, String action) {
    OperatorRows rows = new OperatorRows(metrics);
    SparkPlan top = Operators.unwrap(root);
    if ("tail".equals(action) && top != null && RowRules.limitOf(top) == null) {
      rows.mark(top, "partly run: tail() reads partitions from the last one back only until it"
          + " has its rows");
    }
    rows.noteShuffleInputs(top);
    if ("isEmpty".equals(action) && top != null && RowRules.limitOf(top) == null) {
      // Spark 3.5's isEmpty() is executeTake(1) on the plan, with no limit in it: it takes the
      // first row and stops. Each operator counted what it produced until then, so the root's
      // count is above 0 exactly when a row came back: the answer is 0 or 1, never the count.
      Known produced = rows.uncut(top);
      rows.firstRowOnly = produced.rows == null ? produced
          : Known.of(Math.min(1L, produced.rows));
      if (produced.rows == null || produced.rows > 0) {  // 0: every partition was run through
        rows.mark(top, "cut short: isEmpty() takes the first row and stops (Spark 3.5 plans no"
            + " limit for it; Spark's own count, kept in metrics.numOutputRows, includes rows fetched"
            + " but never used)");
      }
    }
    rows.markCutShort(top);
    return rows;
  }

  /** What a limit-free isEmpty() returned (0 or 1 rows), or null for other actions. */
  Known firstRowOnly() {
    return firstRowOnly;
  }

  Metrics metrics() {
    return metrics;
  }

  /** Rows produced by {@code plan} (unwrapped first), or null with the reason. */
  Known rows(SparkPlan plan) {
    SparkPlan p = Operators.unwrap(plan);
    if (p == null) {
      return Known.unknown("no plan");
    }
    String cut = cutShort.get(p);
    if (cut != null) {
      return Known.unknown(cut);
    }
    return uncut(p);
  }

  /** The rows of {@code p} ignoring limits above it (what Spark's metric says it produced). */
  Known uncut(SparkPlan p) {
    Known k = memo.get(p);
    if (k == null) {
      k = RowRules.apply(p, this);
      if (k.rows == null && fedShuffle.containsKey(p)) {
        k = Known.of(fedShuffle.get(p));
      }
      if (k.rows == null && k.reason != null && !anyReported(p) && ranOnNoPartition(p)) {
        k = Known.of(0);  // its stage had no partition to run, not a skipped stage: 0 rows
      }
      memo.put(p, k);
    }
    return k;
  }

  /**
   * Whether a task ran {@code p} in this execution: its row count, or else any metric of it, was
   * reported (a scan's driver-side metrics, such as its file count, do not say a task ran it).
   */
  private boolean anyReported(SparkPlan p) {
    scala.Option<SQLMetric> rowsMetric = p.metrics().get("numOutputRows");
    if (rowsMetric.isDefined()) {
      return metrics.reported(rowsMetric.get());
    }
    scala.collection.Iterator<SQLMetric> it = p.metrics().values().iterator();
    while (it.hasNext()) {
      if (metrics.reported(it.next())) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether {@code plan}'s part of its stage had no partition to run in this execution, so that
   * it emitted 0 rows (rather than being skipped because an earlier action's shuffle output was
   * reused): each file scan it reads within the stage listed no file in this execution (the
   * driver posts the scan's file count when it lists them), e.g. a partition filter matching
   * none. Only row-wise paths are followed: a unary operator, a union, a broadcast hash join's
   * streamed side; anything else (another leaf, a stage boundary) is not known to be empty.
   */
  private boolean ranOnNoPartition(SparkPlan plan) {
    SparkPlan p = Operators.unwrap(plan);
    if (p instanceof FileSourceScanExec) {
      scala.Option<SQLMetric> files = p.metrics().get("numFiles");
      if (!files.isDefined() || !metrics.reported(files.get())) {
        return false;
      }
      Long n = metrics.value(files.get());
      return n != null && n == 0L;
    }
    if (p == null || RowRules.isStageBoundary(p) || p.children().isEmpty()) {
      return false;
    }
    if (p instanceof BroadcastHashJoinExec) {
      return ranOnNoPartition(((BroadcastHashJoinExec) p).streamedPlan());
    }
    if (p instanceof UnionExec) {
      scala.collection.Iterator<SparkPlan> it = p.children().iterator();
      while (it.hasNext()) {
        if (!ranOnNoPartition(it.next())) {
          return false;
        }
      }
      return true;
    }
    return p.children().size() == 1 && ranOnNoPartition(p.children().head());
  }

  /** The metric named {@code name} of {@code p}, or null with the reason. */
  Known metric(SparkPlan p, String name) {
    scala.Option<SQLMetric> m = p.metrics().get(name);
    if (!m.isDefined()) {
      return null;
    }
    Long v = metrics.value(m.get());
    return Known.ofNullable(v, v == null ? metrics.whyMissing(m.get()) : null);
  }

  /** The rows each child produced, in child order. */
  List<Long> rowsIn(SparkPlan plan) {
    SparkPlan p = Operators.unwrap(plan);
    List<Long> out = new ArrayList<>();
    scala.collection.Iterator<SparkPlan> it = p.children().iterator();
    while (it.hasNext()) {
      out.add(rows(it.next()).rows);
    }
    return out;
  }

  /** Whether a limit above {@code plan} stopped reading it early. */
  boolean isCutShort(SparkPlan plan) {
    return cutShort.containsKey(Operators.unwrap(plan));
  }

  /** Before any count is taken: what each shuffle wrote is what its input emitted. */
  private void noteShuffleInputs(SparkPlan root) {
    forEachNode(root, p -> {
      if (p instanceof org.apache.spark.sql.execution.exchange.ShuffleExchangeLike) {
        Known written = metric(p, "shuffleRecordsWritten");
        if (written != null && written.rows != null) {
          fedShuffle.put(Operators.unwrap(p.children().head()), written.rows);
        }
      }
    });
  }

  /** Every node under {@code root} once (unwrapped), parents before children. */
  private static void forEachNode(SparkPlan root, java.util.function.Consumer<SparkPlan> visit) {
    Deque<SparkPlan> todo = new ArrayDeque<>();
    Set<SparkPlan> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    todo.push(root);
    while (!todo.isEmpty()) {
      SparkPlan p = Operators.unwrap(todo.pop());
      if (p == null || !seen.add(p)) {
        continue;
      }
      visit.accept(p);
      scala.collection.Iterator<SparkPlan> it = p.children().iterator();
      while (it.hasNext()) {
        todo.push(it.next());
      }
    }
  }

  /**
   * Every limit that stopped early marks the operators it was reading within its stage: they
   * were not run to the end, and batch-counting ones (scans, range, columnar-to-row) counted
   * rows they fetched but never passed on. An exchange below ran to completion in its own stage
   * and stops the marking; so does everything under an operator that reads all of its input
   * before it emits anything (sort, aggregate).
   */
  private void markCutShort(SparkPlan root) {
    forEachNode(root, p -> {
      RowRules.Limit limit = RowRules.limitOf(p);
      if (limit != null && limit.stopsEarly && !cutShort.containsKey(p)) {
        Known in = uncut(Operators.unwrap(p.children().head()));
        if (in.rows == null || (limit.limit >= 0 && in.rows >= limit.limit)) {
          mark(p.children().head(), "cut short: " + p.nodeName() + " " + limit.text()
              + " above it stopped reading once it had its rows (Spark's own count, kept in"
              + " metrics.numOutputRows, includes rows fetched but never used)");
        }
      }
    });
  }

  private void mark(SparkPlan start, String reason) {
    Deque<SparkPlan> todo = new ArrayDeque<>();
    todo.push(start);
    // by identity: plan nodes compare by structure, and two equal subtrees are two operators
    Set<SparkPlan> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
    while (!todo.isEmpty()) {
      SparkPlan p = Operators.unwrap(todo.pop());
      if (p == null || RowRules.isStageBoundary(p) || !seen.add(p)) {
        continue;
      }
      cutShort.putIfAbsent(p, reason);
      if (RowRules.readsAllInputFirst(p)) {
        continue;
      }
      scala.collection.Iterator<SparkPlan> it = p.children().iterator();
      while (it.hasNext()) {
        todo.push(it.next());
      }
    }
  }
}
