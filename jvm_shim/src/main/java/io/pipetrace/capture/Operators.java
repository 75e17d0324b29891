package io.pipetrace.capture;

import io.pipetrace.compat.SparkCompat;
import io.pipetrace.health.Counters;
import io.pipetrace.health.Faults;
import io.pipetrace.redact.Redactor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.trees.TreeNode;
import org.apache.spark.sql.execution.CommandResultExec;
import org.apache.spark.sql.execution.InputAdapter;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.WholeStageCodegenExec;
import org.apache.spark.sql.execution.adaptive.AdaptiveSparkPlanExec;
import org.apache.spark.sql.execution.adaptive.QueryStageExec;
import org.apache.spark.sql.execution.exchange.ReusedExchangeExec;
import org.apache.spark.sql.execution.metric.SQLMetric;

/**
 * Flattens an executed physical plan into operators with this execution's metrics: through
 * adaptive (AQE) plans and their query stages, with reused exchanges listed once.
 */
public final class Operators {
  static final int MAX_DESCRIPTION = 1_000;
  private static final int MAX_EXPRESSION_NODES = 500;

  /** One physical operator of a step. */
  static final class Op {
    int id;
    Integer parentId;
    String name;
    String description;
    Long rowsOut;
    List<Long> rowsIn;       // per child, in child order; null for a leaf
    String rowsUnknown;      // why rowsOut is null
    final Map<String, Long> metrics = new LinkedHashMap<>();
    String source;
    transient SparkPlan plan;  // this execution's operator, for logical_steps; never written
  }

  private Operators() {}

  /**
   * Operators of {@code root} in pre-order, ids from {@code firstId}, the root's parent
   * {@code parentId}. Nodes that only wrap others (AQE, query stages, codegen) are skipped.
   */
  static List<Op> walk(SparkPlan root, OperatorRows rows, Redactor redactor, int firstId,
      Integer parentId, List<String> warnings, Map<SparkPlan, String[]> known) {
    String faulty = Faults.nodeToFail();
    List<Op> ops = new ArrayList<>();
    IdentityHashMap<SparkPlan, Integer> seen = new IdentityHashMap<>();
    Deque<Object[]> stack = new ArrayDeque<>();
    stack.push(new Object[] {root, parentId});
    int nextId = firstId;
    while (!stack.isEmpty()) {
      Object[] top = stack.pop();
      SparkPlan plan = unwrap((SparkPlan) top[0]);
      Integer parent = (Integer) top[1];
      if (plan == null) {
        continue;
      }
      Op op = new Op();
      op.id = nextId++;
      op.parentId = parent;
      op.plan = plan;
      ops.add(op);
      if (plan instanceof ReusedExchangeExec) {
        SparkPlan original = ((ReusedExchangeExec) plan).child();
        Integer originalId = seen.get(original);
        op.name = "ReusedExchange";
        OperatorRows.Known reused = rows.rows(plan);
        op.rowsOut = reused.rows;
        op.rowsUnknown = reused.reason;
        op.description = originalId != null ? "ReusedExchange, reuses operator " + originalId
            : "ReusedExchange of " + original.nodeName().trim();
        if (originalId == null) {
          // The original exchange is listed under its first reader; not seen yet, so list it here.
          stack.push(new Object[] {original, op.id});
        }
        continue;
      }
      seen.put(plan, op.id);
      try {
        // Nodes we don't know (vendor or newer Spark nodes) may throw from any of these: the
        // operator keeps its name and place in the tree, the step keeps every other operator.
        Faults.maybeFail(faulty, plan);
        op.name = plan.nodeName().trim();  // "Scan parquet " when no table name follows
        // Description and source don't change for one operator object: a re-run reuses them.
        String[] details = known == null ? null : known.get(plan);
        if (details == null) {
          details = new String[] {cap(redactor, safeSimpleString(plan)), source(plan)};
          if (known != null) {
            known.put(plan, details);
          }
        }
        op.description = details[0];
        op.source = details[1];
        fillMetrics(op, plan, rows);
      } catch (Throwable t) {
        if (op.name == null) {  // nodeName() itself failed: name it after its class
          String cls = plan.getClass().getSimpleName();
          op.name = cls.endsWith("Exec") ? cls.substring(0, cls.length() - 4) : cls;
        }
        Counters.listenerErrors.incrementAndGet();
        if (warnings != null) {
          warnings.add("operator " + op.id + " (" + plan.getClass().getName() + "): "
              + redactor.describe(t, t.getClass().getSimpleName(), MAX_DESCRIPTION).text());
        }
      }
      // Push children in reverse so they pop in plan order (pre-order ids read top-down).
      List<SparkPlan> next = new ArrayList<>();
      scala.collection.Iterator<SparkPlan> children = plan.children().iterator();
      while (children.hasNext()) {
        next.add(children.next());
      }
      scala.collection.Iterator<SparkPlan> subqueries = plan.subqueries().iterator();
      while (subqueries.hasNext()) {
        next.add(subqueries.next());
      }
      for (int i = next.size() - 1; i >= 0; i--) {
        stack.push(new Object[] {next.get(i), op.id});
      }
    }
    return ops;
  }

  /** Skip nodes that only wrap the operators users reason about. */
  public static SparkPlan unwrap(SparkPlan plan) {
    SparkPlan p = plan;
    for (int guard = 0; guard < 100 && p != null; guard++) {
      if (p instanceof AdaptiveSparkPlanExec) {
        p = ((AdaptiveSparkPlanExec) p).executedPlan();
      } else if (p instanceof QueryStageExec) {
        p = ((QueryStageExec) p).plan();
      } else if (p instanceof WholeStageCodegenExec) {
        p = ((WholeStageCodegenExec) p).child();
      } else if (p instanceof InputAdapter) {
        p = ((InputAdapter) p).child();
      } else if (p instanceof CommandResultExec) {
        p = ((CommandResultExec) p).commandPhysicalPlan();
      } else {
        return p;
      }
    }
    return p;
  }

  private static void fillMetrics(Op op, SparkPlan plan, OperatorRows rows) {
    OperatorRows.Known known = rows.rows(plan);
    op.rowsOut = known.rows;
    op.rowsUnknown = known.reason;
    if (!plan.children().isEmpty()) {
      op.rowsIn = rows.rowsIn(plan);
    }
    boolean cut = rows.isCutShort(plan);
    scala.collection.Iterator<scala.Tuple2<String, SQLMetric>> it = plan.metrics().iterator();
    while (it.hasNext()) {
      scala.Tuple2<String, SQLMetric> kv = it.next();
      // numOutputRows is rows_out; kept here as Spark reported it only where rows_out cannot
      // use it (a limit above stopped reading, and Spark counted whole fetched batches).
      if (!"numOutputRows".equals(kv._1()) || cut) {
        Long v = rows.metrics().value(kv._2());
        if (v != null) {
          op.metrics.put(kv._1(), v);
        }
      }
    }
  }

  private static String safeSimpleString(SparkPlan plan) {
    try {
      return plan.simpleString(25);
    } catch (Throwable t) {
      return plan.nodeName();
    }
  }

  /** Redacted, at most MAX_DESCRIPTION chars: a node holding a 10 MB literal costs O(cap). */
  static String cap(Redactor redactor, String s) {
    Redactor.Capped c = redactor.redactCapped(s, MAX_DESCRIPTION);
    return c.cut() ? c.text() + "...[truncated]" : c.text();
  }

  /**
   * The agent's file:line that built this operator's expressions, from their Python origin.
   * Breadth-first, left to right: the expression nearest the top (the filter condition the
   * agent wrote) wins over attributes that the optimizer substituted from earlier projections.
   */
  static String source(TreeNode<?> plan) {
    try {
      Deque<TreeNode<?>> queue = new ArrayDeque<>();
      scala.collection.Iterator<Expression> it =
          ((org.apache.spark.sql.catalyst.plans.QueryPlan<?>) plan).expressions().iterator();
      while (it.hasNext()) {
        queue.add(it.next());
      }
      for (int budget = MAX_EXPRESSION_NODES; budget > 0 && !queue.isEmpty(); budget--) {
        TreeNode<?> e = queue.poll();
        String site = SparkCompat.get().pythonCallSite(e.origin());
        if (site != null) {
          return site;
        }
        scala.collection.Iterator<?> children = e.children().iterator();
        while (children.hasNext()) {
          queue.add((TreeNode<?>) children.next());
        }
      }
    } catch (Throwable t) {
      // Unknown expression classes (e.g. vendor nodes): no source rather than no step.
    }
    return null;
  }
}
