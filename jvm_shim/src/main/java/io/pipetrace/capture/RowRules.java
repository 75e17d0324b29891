package io.pipetrace.capture;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.apache.spark.sql.execution.CollectLimitExec;
import org.apache.spark.sql.execution.CollectTailExec;
import org.apache.spark.sql.execution.GlobalLimitExec;
import org.apache.spark.sql.execution.LocalLimitExec;
import org.apache.spark.sql.execution.LocalTableScanExec;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.TakeOrderedAndProjectExec;
import org.apache.spark.sql.execution.UnionExec;
import org.apache.spark.sql.execution.adaptive.AQEShuffleReadExec;
import org.apache.spark.sql.execution.command.ExecutedCommandExec;
import org.apache.spark.sql.execution.datasources.v2.V2CommandExec;
import org.apache.spark.sql.execution.aggregate.BaseAggregateExec;
import org.apache.spark.sql.execution.exchange.Exchange;
import org.apache.spark.sql.execution.exchange.ReusedExchangeExec;
import org.apache.spark.sql.execution.exchange.ShuffleExchangeLike;

/**
 * One rule per operator family for the rows an operator produced (see {@link OperatorRows}).
 * Each rule answers for the operators it knows and passes on the others; an operator no rule
 * knows (a vendor or newer node without a row metric) is unknown, never guessed.
 */
final class RowRules {
  private RowRules() {}

  /** A rule: the rows of {@code p}, or null when the rule does not apply to it. */
  private interface Rule {
    OperatorRows.Known apply(SparkPlan p, OperatorRows ctx);
  }

  /** A limit: how many rows it keeps, after skipping offset, and whether it stops reading. */
  static final class Limit {
    final int limit;        // -1: no limit, only an offset
    final int offset;
    final boolean stopsEarly;

    Limit(int limit, int offset, boolean stopsEarly) {
      this.limit = limit;
      this.offset = offset;
      this.stopsEarly = stopsEarly;
    }

    /** Rows out for {@code in} rows in (Spark's limit already counts the skipped offset). */
    long apply(long in) {
      long kept = limit >= 0 ? Math.min(limit, in) : in;
      return Math.max(0, kept - offset);
    }

    String text() {
      return offset > 0 ? "(limit " + limit + ", offset " + offset + ")" : "(limit " + limit + ")";
    }
  }

  /**
   * Operators that emit exactly the rows they read: the count of their only input. By class
   * name, so a class missing from some Spark version costs nothing.
   */
  private static final Set<String> SAME_ROWS_AS_INPUT = Set.of(
      "ProjectExec", "SortExec", "WindowExec", "CoalesceExec", "CollectMetricsExec",
      "ArrowEvalPythonExec", "BatchEvalPythonExec", "SerializeFromObjectExec",
      "DeserializeToObjectExec", "MapElementsExec", "RowToColumnarExec", "ColumnarToRowExec",
      "AttachDistributedSequenceExec", "SubqueryExec", "InputAdapter", "WholeStageCodegenExec",
      // a write's rows are the rows it was handed (its output is commit messages)
      "WriteFilesExec");

  /** Operators that read all of their input before they emit: nothing below them is cut short. */
  private static final Set<String> READS_ALL_FIRST = Set.of(
      "SortExec", "TakeOrderedAndProjectExec", "CollectTailExec", "ShuffledHashJoinExec");

  private static final List<Rule> RULES = List.of(
      RowRules::command,
      RowRules::empty,
      RowRules::limits,
      RowRules::shuffle,
      RowRules::reused,
      RowRules::localTable,
      RowRules::counted,
      RowRules::python,
      RowRules::union,
      RowRules::shuffleRead,
      RowRules::sameAsInput);

  /** The rows of {@code p} by the first rule that knows it. */
  static OperatorRows.Known apply(SparkPlan p, OperatorRows ctx) {
    for (Rule rule : RULES) {
      OperatorRows.Known k = rule.apply(p, ctx);
      if (k != null) {
        return k;
      }
    }
    return OperatorRows.Known.unknown("Spark does not count the rows of " + p.nodeName());
  }

  /** The limit {@code p} applies, or null when it is not a limit. */
  static Limit limitOf(SparkPlan p) {
    if (p instanceof CollectLimitExec) {
      CollectLimitExec l = (CollectLimitExec) p;
      return new Limit(l.limit(), l.offset(), l.limit() >= 0);
    }
    if (p instanceof GlobalLimitExec) {
      GlobalLimitExec l = (GlobalLimitExec) p;
      return new Limit(l.limit(), l.offset(), l.limit() >= 0);
    }
    if (p instanceof LocalLimitExec) {
      return new Limit(((LocalLimitExec) p).limit(), 0, true);
    }
    if (p instanceof TakeOrderedAndProjectExec) {
      TakeOrderedAndProjectExec t = (TakeOrderedAndProjectExec) p;
      return new Limit(t.limit(), t.offset(), false);   // sorts all of its input first
    }
    if (p instanceof CollectTailExec) {
      return new Limit(((CollectTailExec) p).limit(), 0, false);
    }
    return null;
  }

  /** Exchanges run to completion in a stage of their own. */
  static boolean isStageBoundary(SparkPlan p) {
    return p instanceof Exchange || p instanceof ReusedExchangeExec;
  }

  static boolean readsAllInputFirst(SparkPlan p) {
    return p instanceof BaseAggregateExec || READS_ALL_FIRST.contains(p.getClass().getSimpleName());
  }

  // --- the rules ---------------------------------------------------------------------------

  /**
   * A command node that runs on the driver (DDL, or the wrapper of a write whose rows its
   * nested execution counts): it has no rows of its own to count. Not a gap in the record, so
   * no warning.
   */
  private static OperatorRows.Known command(SparkPlan p, OperatorRows ctx) {
    boolean command = p instanceof ExecutedCommandExec
        || (p.children().isEmpty() && p instanceof V2CommandExec && !p.metrics().contains("numOutputRows"));
    return command ? OperatorRows.Known.notApplicable() : null;
  }

  /** A relation the optimizer proved empty (adaptive execution replaces such subtrees). */
  private static OperatorRows.Known empty(SparkPlan p, OperatorRows ctx) {
    return "EmptyRelationExec".equals(p.getClass().getSimpleName()) ? OperatorRows.Known.of(0)
        : null;
  }

  /**
   * Limits keep min(limit, input) - offset rows. A local limit keeps up to its limit per
   * partition: exact only when its whole input is below the limit.
   */
  private static OperatorRows.Known limits(SparkPlan p, OperatorRows ctx) {
    Limit limit = limitOf(p);
    if (limit == null) {
      return null;
    }
    OperatorRows.Known in = ctx.uncut(Operators.unwrap(p.children().head()));
    if (in.rows == null) {
      return OperatorRows.Known.unknown(in.reason);
    }
    if (p instanceof LocalLimitExec && in.rows > limit.limit) {
      return OperatorRows.Known.unknown(p.nodeName() + " keeps up to " + limit.limit
          + " rows per partition and its input had more than that in all: per-partition"
          + " counts are not recorded");
    }
    return OperatorRows.Known.of(limit.apply(in.rows));
  }

  /** A shuffle's rows are the records its map side wrote: once, whoever reads them. */
  private static OperatorRows.Known shuffle(SparkPlan p, OperatorRows ctx) {
    if (!(p instanceof ShuffleExchangeLike)) {
      return null;
    }
    OperatorRows.Known written = ctx.metric(p, "shuffleRecordsWritten");
    return written != null ? written
        : OperatorRows.Known.unknown(p.nodeName() + " has no shuffleRecordsWritten metric");
  }

  /** A reused exchange hands on exactly what the original exchange produced. */
  private static OperatorRows.Known reused(SparkPlan p, OperatorRows ctx) {
    return p instanceof ReusedExchangeExec ? ctx.rows(((ReusedExchangeExec) p).child()) : null;
  }

  /** Local rows: the metric when Spark counted them; an empty relation is 0 rows however run. */
  private static OperatorRows.Known localTable(SparkPlan p, OperatorRows ctx) {
    if (!(p instanceof LocalTableScanExec)) {
      return null;
    }
    OperatorRows.Known k = ctx.metric(p, "numOutputRows");
    if ((k == null || k.rows == null) && ((LocalTableScanExec) p).rows().isEmpty()) {
      return OperatorRows.Known.of(0);
    }
    return k;
  }

  /** Operators that count their output: Spark's numOutputRows for this execution. */
  private static OperatorRows.Known counted(SparkPlan p, OperatorRows ctx) {
    return ctx.metric(p, "numOutputRows");
  }

  /**
   * Python operators (mapInPandas, applyInPandas, UDFs) count the rows their Python workers
   * handed back: those are the rows they emit.
   */
  private static OperatorRows.Known python(SparkPlan p, OperatorRows ctx) {
    return ctx.metric(p, "pythonNumRowsReceived");
  }

  /** A union emits all rows of all of its inputs. */
  private static OperatorRows.Known union(SparkPlan p, OperatorRows ctx) {
    if (!(p instanceof UnionExec)) {
      return null;
    }
    long sum = 0;
    scala.collection.Iterator<SparkPlan> it = p.children().iterator();
    while (it.hasNext()) {
      OperatorRows.Known k = ctx.rows(it.next());
      if (k.rows == null) {
        return k;
      }
      sum += k.rows;
    }
    return OperatorRows.Known.of(sum);
  }

  /**
   * An adaptive shuffle read hands on the exchange's rows unless it reads some partition twice
   * (a skew join repeats the other side's partition for every split of a skewed one).
   */
  private static OperatorRows.Known shuffleRead(SparkPlan p, OperatorRows ctx) {
    if (!(p instanceof AQEShuffleReadExec)) {
      return null;
    }
    Set<Object> specs = new HashSet<>();
    scala.collection.Iterator<?> it = ((AQEShuffleReadExec) p).partitionSpecs().iterator();
    while (it.hasNext()) {
      if (!specs.add(it.next())) {
        return OperatorRows.Known.unknown(p.nodeName()
            + " reads some shuffle partitions more than once (skew join)");
      }
    }
    return ctx.rows(p.children().head());
  }

  private static OperatorRows.Known sameAsInput(SparkPlan p, OperatorRows ctx) {
    if (p.children().size() != 1 || !SAME_ROWS_AS_INPUT.contains(p.getClass().getSimpleName())) {
      return null;
    }
    return ctx.rows(p.children().head());
  }
}
