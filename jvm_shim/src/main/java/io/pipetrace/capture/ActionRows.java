package io.pipetrace.capture;

import java.util.List;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Literal;
import org.apache.spark.sql.catalyst.expressions.aggregate.AggregateExpression;
import org.apache.spark.sql.catalyst.expressions.aggregate.Count;
import org.apache.spark.sql.catalyst.plans.logical.GlobalLimit;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.LocalTableScanExec;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.adaptive.AQEShuffleReadExec;
import org.apache.spark.sql.execution.aggregate.BaseAggregateExec;
import org.apache.spark.sql.execution.exchange.Exchange;
import org.apache.spark.sql.types.LongType;

/**
 * A step's rows_out: one rule per action kind, each reading the operator that really produced
 * the action's result (see {@link OperatorRows} for what an operator's count means).
 *
 * <ul>
 *   <li>count(): the rows that fed Spark's count(1) aggregate (the child of its partial
 *       aggregate), or the value of a metadata-only count's one local row;
 *   <li>collect, take, first, head, toPandas, toArrow, isEmpty: the rows the plan's root
 *       produced (limits and offsets applied);
 *   <li>tail(n): the tail operator's rows where the plan has one (Spark Connect); classic
 *       PySpark passes n outside the plan, so there it is unknown;
 *   <li>show(n): the rows printed; Spark fetches n + 1 to know whether to say "only showing",
 *       and that fetch stays the root operator's rows_out;
 *   <li>writes: the rows the write command reports it wrote;
 *   <li>other commands (DDL): no rows, null without a warning.
 * </ul>
 */
final class ActionRows {
  private ActionRows() {}

  /** Rows the action returned, counted, printed, or wrote; or null with the reason. */
  static OperatorRows.Known of(String action, SparkPlan executed, LogicalPlan analyzed,
      boolean writes, List<StepCapture.Nested> nested, OperatorRows rows) {
    SparkPlan root = Operators.unwrap(executed);
    if (writes) {
      return written(root, nested, rows);
    }
    switch (action) {
      case "count":
        return count(root, rows);
      case "show":
        return shown(root, analyzed, rows);
      case "command":
        return OperatorRows.Known.unknown(null);
      case "isEmpty":
        return rows.firstRowOnly() != null ? rows.firstRowOnly() : rows.rows(root);
      case "tail":
        return RowRules.limitOf(root) != null ? rows.rows(root)
            : OperatorRows.Known.unknown("tail(n): Spark passes n to the driver outside the plan,"
                + " so the number of rows returned is in no metric");
      default:
        return rows.rows(root);
    }
  }

  private static OperatorRows.Known written(SparkPlan root, List<StepCapture.Nested> nested,
      OperatorRows rows) {
    OperatorRows.Known own = rows.metric(root, "numOutputRows");
    if (own != null && own.rows != null) {
      return own;
    }
    for (StepCapture.Nested n : nested) {
      // Only a nested write (saveAsTable's insert): other nested queries are the engine's own
      // (Delta's CTAS runs small queries of its own whose rows are not the rows written).
      if (n.output != null && n.rowsOut != null) {
        return OperatorRows.Known.of(n.rowsOut);
      }
    }
    return OperatorRows.Known.unknown(
        "write: the write command (" + root.nodeName() + ") reported no count of rows written");
  }

  /**
   * count() is Spark's count(1) over the counted rows, planned as a final aggregate, an exchange
   * to one partition and a partial aggregate: the answer is the rows that fed the partial one.
   * Aggregates the user wrote (dedup, distinct, groupBy) sit below it and are not walked past.
   */
  static OperatorRows.Known count(SparkPlan root, OperatorRows rows) {
    SparkPlan p = root;
    if (p instanceof LocalTableScanExec) {
      Long value = singleLong((LocalTableScanExec) p);
      return value != null ? OperatorRows.Known.of(value)
          : OperatorRows.Known.unknown("count(): answered from local rows pipetrace cannot read");
    }
    for (int guard = 0; guard < 20 && p != null; guard++) {
      if (p instanceof BaseAggregateExec && isGlobalCountOfOne((BaseAggregateExec) p)) {
        String mode = ((AggregateExpression) ((BaseAggregateExec) p).aggregateExpressions().head())
            .mode().toString();
        if ("Partial".equals(mode) || "Complete".equals(mode)) {
          return rows.rows(p.children().head());
        }
        p = Operators.unwrap(p.children().head());
      } else if ((p instanceof Exchange || p instanceof AQEShuffleReadExec)
          && !p.children().isEmpty()) {
        p = Operators.unwrap(p.children().head());
      } else {
        break;
      }
    }
    return OperatorRows.Known.unknown("count(): the plan has no count(1) aggregate whose input"
        + " rows are known (root " + root.nodeName() + "; e.g. a count pushed down to the data"
        + " source is answered from file statistics no metric records)");
  }

  /** A global aggregate computing exactly count(1): what Dataset.count() plans. */
  private static boolean isGlobalCountOfOne(BaseAggregateExec agg) {
    if (!agg.groupingExpressions().isEmpty() || agg.aggregateExpressions().size() != 1) {
      return false;
    }
    AggregateExpression e = (AggregateExpression) agg.aggregateExpressions().head();
    if (e.isDistinct() || e.filter().isDefined() || !(e.aggregateFunction() instanceof Count)) {
      return false;
    }
    Count c = (Count) e.aggregateFunction();
    if (c.children().size() != 1 || !(c.children().head() instanceof Literal)) {
      return false;
    }
    Object v = ((Literal) c.children().head()).value();
    return v != null && "1".equals(v.toString());
  }

  private static Long singleLong(LocalTableScanExec scan) {
    scala.collection.Seq<InternalRow> local = scan.rows();
    if (local.size() != 1 || scan.output().size() != 1
        || !(scan.output().head().dataType() instanceof LongType)) {
      return null;
    }
    InternalRow row = local.head();
    return row.isNullAt(0) ? null : row.getLong(0);
  }

  /** show(n) fetched up to n + 1 rows and printed at most n of them. */
  private static OperatorRows.Known shown(SparkPlan root, LogicalPlan analyzed, OperatorRows rows) {
    OperatorRows.Known fetched = rows.rows(root);
    if (fetched.rows == null) {
      return fetched;
    }
    Integer fetchLimit = topLimit(analyzed);
    if (fetchLimit == null) {
      RowRules.Limit limit = RowRules.limitOf(root);
      fetchLimit = limit != null && limit.limit >= 0 ? limit.limit : null;
    }
    if (fetchLimit == null || fetchLimit < 1) {
      return OperatorRows.Known.unknown("show(): the number of rows asked for is not in the plan");
    }
    return OperatorRows.Known.of(Math.min(fetched.rows, fetchLimit - 1));
  }

  private static Integer topLimit(LogicalPlan analyzed) {
    if (analyzed instanceof GlobalLimit) {
      Object v = ((GlobalLimit) analyzed).limitExpr().eval(null);
      if (v instanceof Integer) {
        return (Integer) v;
      }
    }
    return null;
  }
}
