package io.pipetrace.capture;

import io.pipetrace.redact.Redactor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.Aggregate;
import org.apache.spark.sql.catalyst.plans.logical.Deduplicate;
import org.apache.spark.sql.catalyst.plans.logical.Distinct;
import org.apache.spark.sql.catalyst.plans.logical.Filter;
import org.apache.spark.sql.catalyst.plans.logical.Join;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.physical.RangePartitioning;
import org.apache.spark.sql.execution.CollectMetricsExec;
import org.apache.spark.sql.execution.SparkPlan;

/**
 * The agent's logical steps of one action ({@code logical_steps}): each tagged filter, join,
 * dedup... with the physical operators it ended up in, whether an operator of it also does
 * another step's work (merged), and its rows when measured with observed metrics.
 */
final class LogicalSteps {
  private static final int MAX_STEPS = 500;
  private static final java.util.regex.Pattern OBSERVATION =
      java.util.regex.Pattern.compile("pipetrace_step_(\\d+)_(in|out)");

  private LogicalSteps() {}

  /** The steps tagged in {@code analyzed}, by id; operators' sources set from their step. */
  static List<Map<String, Object>> of(LogicalPlan analyzed, List<Operators.Op> ops,
      scala.collection.Map<String, Row> observed, Redactor redactor) {
    Map<Integer, StepTags.Step> steps = tagged(analyzed);
    if (steps.isEmpty()) {
      return null;
    }
    prepare(steps, analyzed);
    Map<Integer, Set<Integer>> opsOfStep = new HashMap<>();
    Map<Integer, Set<Integer>> stepsOfOp = new HashMap<>();
    Map<Integer, Operators.Op> byId = new HashMap<>();
    for (Operators.Op op : ops) {
      byId.put(op.id, op);
      if (op.plan == null) {
        continue;
      }
      StepTags.Step measuring = measured(op.plan, steps);
      if (measuring != null) {
        // A count pipetrace added (measure_steps): its expressions' origin is pipetrace's own
        // code; it measures the agent's step, so it carries that step's line.
        op.source = measuring.source;
        continue;
      }
      Set<Integer> mine = new LinkedHashSet<>();
      StepTags.Step linked = StepTags.ofPhysical(op.plan);
      if (linked != null && steps.containsKey(linked.id)) {
        mine.add(linked.id);
      }
      for (StepTags.Step s : steps.values()) {
        if (carries(op, s)) {
          mine.add(s.id);
        }
      }
      for (int id : mine) {
        opsOfStep.computeIfAbsent(id, k -> new LinkedHashSet<>()).add(op.id);
      }
      stepsOfOp.put(op.id, mine);
      String source = sourceOf(op, mine, steps);
      if (source != null) {
        op.source = source;
      }
    }
    List<Map<String, Object>> out = new ArrayList<>();
    for (StepTags.Step s : steps.values()) {
      Set<Integer> mine = opsOfStep.getOrDefault(s.id, Set.of());
      Set<Integer> others = new java.util.TreeSet<>();
      for (int opId : mine) {
        for (int other : stepsOfOp.get(opId)) {
          if (other != s.id) {
            others.add(other);
          }
        }
      }
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("id", s.id);
      m.put("kind", s.kind);
      m.put("method", s.method);
      m.put("description", Operators.cap(redactor, describe(s.node)));
      m.put("source", s.source == null ? null : redactor.redact(s.source));
      m.put("operator_ids", new ArrayList<>(mine));
      m.put("merged", !others.isEmpty());
      m.put("merged_with", others.isEmpty() ? null : new ArrayList<>(others));
      Object[] rows = rows(s, ops, byId, observed, others);
      m.put("rows_in", rows[0]);
      m.put("rows_out", rows[1]);
      m.put("exact", rows[0] != null);
      m.put("rows_unknown", rows[2]);
      out.add(m);
    }
    return out;
  }

  /** The step a pipetrace observation (pipetrace_step_&lt;id&gt;_in/_out) measures, or null. */
  private static StepTags.Step measured(SparkPlan plan, Map<Integer, StepTags.Step> steps) {
    if (!(plan instanceof CollectMetricsExec)) {
      return null;
    }
    java.util.regex.Matcher m = OBSERVATION.matcher(((CollectMetricsExec) plan).name());
    return m.matches() ? steps.get(Integer.parseInt(m.group(1))) : null;
  }

  private static Map<Integer, StepTags.Step> tagged(LogicalPlan analyzed) {
    Map<Integer, StepTags.Step> steps = new TreeMap<>();
    Deque<LogicalPlan> stack = new ArrayDeque<>();
    stack.push(analyzed);
    int budget = 100_000;
    while (!stack.isEmpty() && budget-- > 0 && steps.size() < MAX_STEPS) {
      LogicalPlan p = stack.pop();
      StepTags.Step s = StepTags.of(p);
      if (s != null && !steps.containsKey(s.id)) {
        steps.put(s.id, s);
      }
      scala.collection.Iterator<LogicalPlan> it = p.children().iterator();
      while (it.hasNext()) {
        stack.push(it.next());
      }
    }
    return steps;
  }

  /** The step that made this operator: one of its own kind, else the one it links to. */
  private static String sourceOf(Operators.Op op, Set<Integer> mine,
      Map<Integer, StepTags.Step> steps) {
    String category = category(op.name);
    String fallback = null;
    for (int id : mine) {
      StepTags.Step s = steps.get(id);
      if (s.source == null) {
        continue;
      }
      if (s.kind.equals(category) || ("aggregate".equals(category) && "dedup".equals(s.kind))) {
        return s.source;
      }
      StepTags.Step linked = StepTags.ofPhysical(op.plan);
      if (linked != null && linked.id == id && category == null) {
        fallback = s.source;
      }
    }
    return fallback;
  }

  /** What kind of agent step an operator of this name does, or null. */
  static String category(String name) {
    if (name == null) {
      return null;
    }
    if (name.contains("Join") || name.startsWith("CartesianProduct")) {
      return "join";
    }
    if (name.equals("Filter")) {
      return "filter";
    }
    if (name.contains("Aggregate")) {
      return "aggregate";
    }
    if (name.equals("Project")) {
      return "project";
    }
    if (name.equals("Sort")) {
      return "sort";
    }
    if (name.equals("Union")) {
      return "union";
    }
    if (name.contains("Limit")) {
      return "limit";
    }
    return null;
  }

  /** What each step's operators must evaluate: its condition's forms, or its grouping keys. */
  private static void prepare(Map<Integer, StepTags.Step> steps, LogicalPlan analyzed) {
    Map<Long, Expression> aliases = null;
    for (StepTags.Step s : steps.values()) {
      try {
        if (s.node instanceof Filter || s.node instanceof Join) {
          aliases = aliases == null ? Conditions.aliases(analyzed) : aliases;
          scala.Option<Expression> cond = s.node instanceof Filter
              ? scala.Option.apply(((Filter) s.node).condition()) : ((Join) s.node).condition();
          if (cond.isDefined()) {
            s.forms = Conditions.forms(cond.get(), aliases, s.node.children().head());
          }
        } else if (s.node instanceof Deduplicate) {
          s.keys = new ArrayList<>();
          scala.collection.Iterator<Attribute> it = ((Deduplicate) s.node).keys().iterator();
          while (it.hasNext()) {
            s.keys.add(it.next());
          }
        } else if (s.node instanceof Distinct || s.node instanceof Aggregate) {
          s.keys = new ArrayList<>();
          scala.collection.Iterator<? extends Expression> it = s.node instanceof Distinct
              ? s.node.output().iterator() : ((Aggregate) s.node).groupingExpressions().iterator();
          while (it.hasNext()) {
            s.keys.add(it.next());
          }
        }
      } catch (Throwable t) {
        // An unknown node shape: the step keeps only the operators its tag links to.
      }
    }
  }

  /** True when the operator does (part of) the step's work: evaluates a conjunct of its
   *  filter, every conjunct of its join, or groups by its dedup/aggregate keys. */
  private static boolean carries(Operators.Op op, StepTags.Step s) {
    String name = op.name == null ? "" : op.name;
    boolean join = name.contains("Join");
    if ("filter".equals(s.kind) && s.forms != null
        && (name.equals("Filter") || join || name.contains("Scan"))) {
      for (Expression[] forms : s.forms) {
        if (Conditions.evaluates(op.plan, forms, join)) {
          return true;
        }
      }
    }
    if ("join".equals(s.kind) && s.forms != null && join) {
      for (Expression[] forms : s.forms) {
        if (!Conditions.evaluates(op.plan, forms, true)) {
          return false;
        }
      }
      return true;
    }
    if (s.keys != null && ("dedup".equals(s.kind) || "aggregate".equals(s.kind))) {
      return Conditions.groupsBy(op.plan, s.keys);
    }
    return false;
  }

  private static String describe(LogicalPlan node) {
    try {
      // Written as plans are (attribute ids, not SQL): "key = 'a'" in SQL form reads like a
      // key=value secret to the redactor; "(key#1 = a)" is the column the plan texts show.
      if (node instanceof Filter) {
        return ((Filter) node).condition().toString();
      }
      if (node instanceof Join) {
        Join j = (Join) node;
        return j.joinType().sql() + (j.condition().isDefined()
            ? " ON " + j.condition().get().toString() : "");
      }
      return node.simpleString(25);
    } catch (Throwable t) {
      return node.nodeName();
    }
  }

  /** {rows_in, rows_out, why unknown}: a measured filter's observed counts, when they are
   *  exactly its rows in this execution. */
  private static Object[] rows(StepTags.Step s, List<Operators.Op> ops,
      Map<Integer, Operators.Op> byId, scala.collection.Map<String, Row> observed,
      Set<Integer> others) {
    String merged = others.isEmpty() ? "" : "merged with step(s) " + others
        + " in one physical operator; ";
    if (s.observedIn == null) {
      return new Object[] {null, null, merged + ("filter".equals(s.kind)
          ? "not measured (measure each filter with attach(measure_steps=True) or "
            + "`pipetrace run --measure-steps`)"
          : "only filters are measured")};
    }
    String why = null;
    for (String name : new String[] {s.observedIn, s.observedOut}) {
      List<Operators.Op> at = new ArrayList<>();
      for (Operators.Op op : ops) {
        if (op.plan instanceof CollectMetricsExec
            && name.equals(((CollectMetricsExec) op.plan).name())) {
          at.add(op);
        }
      }
      if (at.isEmpty()) {
        why = "not measured in this execution (its rows came from a cache or an earlier result)";
      } else if (at.size() > 1) {
        why = "the measured filter runs more than once in this plan";
      } else {
        String above = aboveIssue(at.get(0), byId);
        if (above != null) {
          why = above;
        }
      }
    }
    if (why == null && (observed == null || !observed.contains(s.observedIn)
        || !observed.contains(s.observedOut))) {
      why = "Spark delivered no observed metrics for this step";
    }
    if (why != null) {
      return new Object[] {null, null, why};
    }
    return new Object[] {observed.apply(s.observedIn).getLong(0),
        observed.apply(s.observedOut).getLong(0), null};
  }

  /** Why counts taken at this operator are not its rows once: a limit above cut it short, or
   *  a global sort above re-ran its stage to sample. */
  private static String aboveIssue(Operators.Op op, Map<Integer, Operators.Op> byId) {
    Operators.Op p = op.parentId == null ? null : byId.get(op.parentId);
    for (int guard = 0; p != null && guard < 10_000; guard++) {
      String name = p.name == null ? "" : p.name;
      if (name.equals("CollectLimit") || name.equals("GlobalLimit")
          || name.equals("LocalLimit")) {
        return "a limit above the filter stopped reading early: its counts are partial";
      }
      if (p.plan != null && name.contains("Exchange")
          && p.plan.outputPartitioning() instanceof RangePartitioning) {
        return "a global sort above re-ran the filter's stage to sample its bounds";
      }
      p = p.parentId == null ? null : byId.get(p.parentId);
    }
    return null;
  }
}
