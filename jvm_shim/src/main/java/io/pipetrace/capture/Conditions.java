package io.pipetrace.capture;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.spark.sql.catalyst.expressions.Alias;
import org.apache.spark.sql.catalyst.expressions.And;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.EqualTo;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.optimizer.ConstantFolding$;
import org.apache.spark.sql.catalyst.plans.logical.Filter;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.execution.SparkPlan;

/**
 * Where an agent's condition ended up: the conjuncts of a filter or join condition as the
 * optimizer rewrites them when it pushes them down (aliases replaced by what they name,
 * constants folded), and whether a physical operator evaluates one of them.
 */
final class Conditions {
  private static final int MAX_EXPRESSION_NODES = 2_000;
  private static final int MAX_ALIAS_DEPTH = 20;

  private Conditions() {}

  /** Alias id → the expression it names, from every projection of the analyzed plan. */
  static Map<Long, Expression> aliases(LogicalPlan analyzed) {
    Map<Long, Expression> out = new HashMap<>();
    Deque<LogicalPlan> stack = new ArrayDeque<>();
    stack.push(analyzed);
    for (int budget = 100_000; !stack.isEmpty() && budget > 0; budget--) {
      LogicalPlan p = stack.pop();
      if (p instanceof Project) {
        scala.collection.Iterator<NamedExpression> it = ((Project) p).projectList().iterator();
        while (it.hasNext()) {
          NamedExpression e = it.next();
          if (e instanceof Alias) {
            out.put(e.exprId().id(), ((Alias) e).child());
          }
        }
      }
      scala.collection.Iterator<LogicalPlan> children = p.children().iterator();
      while (children.hasNext()) {
        stack.push(children.next());
      }
    }
    return out;
  }

  /** The conjuncts of {@code e}, each as written and as the optimizer may have rewritten it. */
  static List<Expression[]> forms(Expression e, Map<Long, Expression> aliases, LogicalPlan child) {
    List<Expression[]> out = new ArrayList<>();
    for (Expression c : conjuncts(e)) {
      Expression expanded = c;
      for (int i = 0; i < MAX_ALIAS_DEPTH; i++) {
        Expression next = expanded.transformUp(new Substitute(aliases));
        if (next.fastEquals(expanded)) {
          break;
        }
        expanded = next;
      }
      out.add(new Expression[] {c, fold(c, child), fold(expanded, child)});
    }
    return out;
  }

  private static Expression fold(Expression e, LogicalPlan child) {
    try {
      LogicalPlan folded = ConstantFolding$.MODULE$.apply(new Filter(e, child));
      return ((Filter) folded).condition();
    } catch (Throwable t) {
      return e;
    }
  }

  private static List<Expression> conjuncts(Expression e) {
    List<Expression> out = new ArrayList<>();
    Deque<Expression> stack = new ArrayDeque<>();
    stack.push(e);
    while (!stack.isEmpty()) {
      Expression x = stack.pop();
      if (x instanceof And) {
        stack.push(((And) x).right());
        stack.push(((And) x).left());
      } else {
        out.add(x);
      }
    }
    return out;
  }

  /** True when the operator evaluates one of the forms: a subtree of one of its expressions,
   *  or (a join) both sides of an equality among its keys. */
  static boolean evaluates(SparkPlan plan, Expression[] forms, boolean join) {
    List<Expression> all = new ArrayList<>();
    scala.collection.Iterator<Expression> it = plan.expressions().iterator();
    while (it.hasNext()) {
      all.add(it.next());
    }
    for (Expression c : forms) {
      if (join && c instanceof EqualTo && bothSides((EqualTo) c, all)) {
        return true;
      }
    }
    Deque<Expression> queue = new ArrayDeque<>(all);
    for (int budget = MAX_EXPRESSION_NODES; budget > 0 && !queue.isEmpty(); budget--) {
      Expression e = queue.poll();
      for (Expression c : forms) {
        if (e.semanticEquals(c)) {
          return true;
        }
      }
      scala.collection.Iterator<Expression> children = e.children().iterator();
      while (children.hasNext()) {
        queue.add(children.next());
      }
    }
    return false;
  }

  private static boolean bothSides(EqualTo c, List<Expression> keys) {
    boolean left = false;
    boolean right = false;
    for (Expression e : keys) {
      left |= e.semanticEquals(c.left());
      right |= e.semanticEquals(c.right());
    }
    return left && right;
  }

  /** True when the operator groups by exactly these keys (a dedup or an aggregate). */
  static boolean groupsBy(SparkPlan plan, List<Expression> keys) {
    if (!(plan instanceof org.apache.spark.sql.execution.aggregate.BaseAggregateExec)) {
      return false;
    }
    scala.collection.Seq<NamedExpression> grouping =
        ((org.apache.spark.sql.execution.aggregate.BaseAggregateExec) plan).groupingExpressions();
    if (grouping.size() != keys.size()) {
      return false;
    }
    scala.collection.Iterator<NamedExpression> it = grouping.iterator();
    while (it.hasNext()) {
      NamedExpression g = it.next();
      boolean found = false;
      for (Expression k : keys) {
        found |= ((Expression) g).semanticEquals(k) || g.exprId().equals(exprIdOf(k));
      }
      if (!found) {
        return false;
      }
    }
    return true;
  }

  private static Object exprIdOf(Expression e) {
    return e instanceof NamedExpression ? ((NamedExpression) e).exprId() : null;
  }

  /** Replaces an attribute that names an alias with the aliased expression. */
  private static final class Substitute
      extends scala.runtime.AbstractPartialFunction<Expression, Expression> {
    private final Map<Long, Expression> aliases;

    Substitute(Map<Long, Expression> aliases) {
      this.aliases = aliases;
    }

    @Override
    public boolean isDefinedAt(Expression e) {
      return e instanceof Attribute && aliases.containsKey(((Attribute) e).exprId().id());
    }

    @Override
    public Expression apply(Expression e) {
      return isDefinedAt(e) ? aliases.get(((Attribute) e).exprId().id()) : e;
    }
  }
}
