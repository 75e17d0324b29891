package io.pipetrace.capture;

import io.pipetrace.capture.ColumnOrigin.How;

import java.util.LinkedHashSet;
import java.util.Set;

import org.apache.spark.sql.catalyst.expressions.Alias;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.Exists;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.expressions.OuterReference;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.expressions.ToPrettyString;
import org.apache.spark.sql.catalyst.expressions.WindowExpression;
import org.apache.spark.sql.catalyst.expressions.aggregate.AggregateExpression;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;

/**
 * The input columns an expression is computed from, and how: an attribute alone passes its
 * value through (direct); under an aggregate function it is aggregated, under a window function
 * windowed (the partition and order columns included), anywhere else computed (expression, a
 * cast included). An aggregate or window function that names no column ({@code count(*)},
 * {@code row_number()} without order) is computed from the rows of the inputs below it.
 */
final class LineageExpressions {
  /** What an expression was found to come from. */
  static final class Found {
    final Set<ColumnOrigin> origins = new LinkedHashSet<>();
    String unknown;          // why part of it is not known, or null
    boolean anyColumn;       // it named at least one column

    void add(Found other) {
      origins.addAll(other.origins);
      unknown = unknown == null ? other.unknown : unknown;
      anyColumn |= other.anyColumn;
    }
  }

  private LineageExpressions() {}

  /**
   * Origins of {@code e} seen through {@code context}; {@code rowsOf} is the plan whose rows a
   * column-free aggregate counts (the node's child).
   */
  static Found of(Expression e, How context, LogicalPlan rowsOf, ColumnLineage s) {
    Found out = new Found();
    walk(e, context, rowsOf, s, out);
    return out;
  }

  private static void walk(Expression e, How context, LogicalPlan rowsOf, ColumnLineage s,
      Found out) {
    s.tick();
    if (e instanceof OuterReference) {
      NamedExpression inner = ((OuterReference) e).e();
      if (inner instanceof Attribute) {
        attribute((Attribute) inner, context, s, out);
      }
      return;
    }
    if (e instanceof Attribute) {
      attribute((Attribute) e, context, s, out);
      return;
    }
    if (e instanceof Alias || e instanceof ToPrettyString) {
      // A rename, or show()'s display string: the value passes through.
      children(e, context, rowsOf, s, out);
      return;
    }
    if (e instanceof AggregateExpression || e instanceof WindowExpression) {
      How how = How.stronger(context,
          e instanceof WindowExpression ? How.WINDOW : How.AGGREGATE);
      Found inner = new Found();
      children(e, how, rowsOf, s, inner);
      if (!inner.anyColumn && rowsOf != null) {
        for (ColumnOrigin rows : s.rowsOf(rowsOf)) {
          inner.origins.add(rows.as(how));
        }
      }
      out.add(inner);
      return;
    }
    if (e instanceof SubqueryExpression) {
      subquery((SubqueryExpression) e, context, s, out);
      return;
    }
    children(e, How.stronger(context, How.EXPRESSION), rowsOf, s, out);
  }

  /**
   * A subquery's value is its output column's (scalar, IN); EXISTS gives no value. Its own
   * filters and join keys count among the step's row-level origins.
   */
  private static void subquery(SubqueryExpression e, How context, ColumnLineage s, Found out) {
    LogicalPlan plan = e.plan();
    s.walk(plan);
    if (e instanceof Exists) {
      return;
    }
    scala.collection.Iterator<Attribute> it = plan.output().iterator();
    while (it.hasNext()) {
      attribute(it.next(), context, s, out);
    }
  }

  private static void children(Expression e, How context, LogicalPlan rowsOf, ColumnLineage s,
      Found out) {
    scala.collection.Iterator<Expression> it = e.children().iterator();
    while (it.hasNext()) {
      walk(it.next(), context, rowsOf, s, out);
    }
  }

  private static void attribute(Attribute a, How context, ColumnLineage s, Found out) {
    out.anyColumn = true;
    String why = s.attributes.containsKey(a.exprId().id()) ? s.unknown.get(a.exprId().id())
        : "column " + a.name() + " not found below its use";
    if (why != null && out.unknown == null) {
      out.unknown = why;
    }
    for (ColumnOrigin o : s.originsOf(a)) {
      s.tick();
      out.origins.add(o.through(context));
    }
  }
}
