package io.pipetrace.capture;

import io.pipetrace.capture.ColumnOrigin.How;
import io.pipetrace.redact.Redactor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.plans.logical.CTERelationRef;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;

/**
 * Column lineage of a step: for each output column, the input columns it was computed from and
 * how, plus the input columns that decided which rows there are (filters, join keys, grouping,
 * sort), from the analyzed logical plan: the plan as the agent wrote it, before the optimizer
 * merges a filter into a join. Expression ids are followed back to the relation leaves, which are
 * named by {@link Relations#input} exactly as the step's {@code inputs}.
 *
 * <p>Bounded: at most {@link #MAX_NODES} plan nodes and {@link #MAX_WORK} expression visits
 * (else null with a warning), at most {@link #MAX_ENTRIES} entries (the rest left out, with a
 * warning). Never throws: a failure is null with a warning.
 */
public final class ColumnLineage {
  static final int MAX_NODES = 20_000;
  static final int MAX_WORK = 500_000;
  static final int MAX_ENTRIES = 2_000;

  /** The entries (null when unknown) and what the capture must say about them. */
  public static final class Result {
    public final List<Map<String, Object>> entries;
    public final List<String> warnings;

    Result(List<Map<String, Object>> entries, List<String> warnings) {
      this.entries = entries;
      this.warnings = warnings;
    }
  }

  /** Thrown when the plan exceeds the budget; caught in {@link #of}. */
  static final class OverBudget extends RuntimeException {
    private static final long serialVersionUID = 1L;

    OverBudget(String what) {
      super(what, null, false, false);
    }
  }

  final Redactor redactor;
  /** Value origins of each attribute (expression id) met so far. */
  final Map<Long, Set<ColumnOrigin>> attributes = new HashMap<>();
  /** Attributes whose origin is not known, with the reason. */
  final Map<Long, String> unknown = new HashMap<>();
  /** What the user sees as the name of an attribute, where Spark renamed it (show's display). */
  final Map<Long, String> displayNames = new HashMap<>();
  /** Row-level origins anywhere in the query: which rows there are and their order. */
  final Set<ColumnOrigin> rowLevel = new LinkedHashSet<>();
  /** A CTE definition's plan by its id, for the references to it. */
  final Map<Long, LogicalPlan> cteDefinitions = new HashMap<>();
  private final Map<LogicalPlan, Set<ColumnOrigin>> rowsOf = new IdentityHashMap<>();
  private final Set<LogicalPlan> walked = Collections.newSetFromMap(new IdentityHashMap<>());
  private int nodes;
  private int work;

  private ColumnLineage(Redactor redactor) {
    this.redactor = redactor;
  }

  /**
   * Lineage of {@code query}'s output columns; {@code null} query: nothing was computed from
   * inputs (a command that writes no data), an empty list.
   */
  public static Result of(LogicalPlan query, Redactor redactor) {
    List<String> warnings = new ArrayList<>();
    if (query == null) {
      return new Result(new ArrayList<>(), warnings);
    }
    try {
      ColumnLineage lineage = new ColumnLineage(redactor);
      lineage.walk(query);
      return new Result(lineage.entries(query, warnings), warnings);
    } catch (OverBudget e) {
      warnings.add("column_lineage: not recorded, the plan is too large (" + e.getMessage() + ")");
    } catch (StackOverflowError e) {
      warnings.add("column_lineage: not recorded, the plan is too deeply nested");
    } catch (Throwable t) {
      warnings.add("column_lineage: not recorded: "
          + redactor.describe(t, t.getClass().getSimpleName(), 500).text());
    }
    return new Result(null, warnings);
  }

  /** Visit {@code plan}'s nodes children first (iteratively: plans can be thousands deep). */
  void walk(LogicalPlan plan) {
    Deque<Object[]> stack = new ArrayDeque<>();
    stack.push(new Object[] {plan, Boolean.FALSE});
    while (!stack.isEmpty()) {
      Object[] top = stack.pop();
      LogicalPlan p = (LogicalPlan) top[0];
      if ((Boolean) top[1]) {
        LineageNodes.apply(p, this);
        continue;
      }
      if (!walked.add(p)) {
        continue;
      }
      if (++nodes > MAX_NODES) {
        throw new OverBudget("over " + MAX_NODES + " plan nodes");
      }
      stack.push(new Object[] {p, Boolean.TRUE});
      List<LogicalPlan> children = new ArrayList<>();
      scala.collection.Iterator<LogicalPlan> it = p.children().iterator();
      while (it.hasNext()) {
        children.add(it.next());
      }
      // Pushed in reverse: the first child (a WITH's definitions come first) is visited first.
      for (int i = children.size() - 1; i >= 0; i--) {
        stack.push(new Object[] {children.get(i), Boolean.FALSE});
      }
    }
  }

  /** Counts one unit of work against the budget. */
  void tick() {
    if (++work > MAX_WORK) {
      throw new OverBudget("over " + MAX_WORK + " expression nodes and origins");
    }
  }

  /** The value origins of {@code a}: empty when computed from literals only. */
  Set<ColumnOrigin> originsOf(Attribute a) {
    Set<ColumnOrigin> o = attributes.get(a.exprId().id());
    return o == null ? Set.of() : o;
  }

  void define(Attribute a, Set<ColumnOrigin> origins, String unknownReason) {
    long id = a.exprId().id();
    if (unknownReason != null) {
      unknown.putIfAbsent(id, unknownReason);
    }
    attributes.put(id, origins);
  }

  /** Adds origins to an attribute's (a union's output, which keeps its first child's ids). */
  void merge(Attribute a, Set<ColumnOrigin> origins, String unknownReason) {
    long id = a.exprId().id();
    if (unknownReason != null) {
      unknown.putIfAbsent(id, unknownReason);
    }
    Set<ColumnOrigin> merged = new LinkedHashSet<>(originsOf(a));
    for (ColumnOrigin o : origins) {
      tick();
      merged.add(o);
    }
    attributes.put(id, merged);
  }

  void addRowLevel(Set<ColumnOrigin> origins, How how) {
    for (ColumnOrigin o : origins) {
      tick();
      rowLevel.add(new ColumnOrigin(o.input(), o.kind(), o.column(), how));
    }
  }

  /**
   * The inputs whose rows reach {@code plan}'s output, as origins without a column: what an
   * aggregate that names no column ({@code count(*)}) is computed from.
   */
  Set<ColumnOrigin> rowsOf(LogicalPlan plan) {
    Set<ColumnOrigin> known = rowsOf.get(plan);
    if (known != null) {
      return known;
    }
    Set<ColumnOrigin> found = new LinkedHashSet<>();
    Deque<LogicalPlan> stack = new ArrayDeque<>();
    stack.push(plan);
    int budget = MAX_NODES;
    while (!stack.isEmpty()) {
      if (budget-- == 0) {
        throw new OverBudget("over " + MAX_NODES + " plan nodes");
      }
      LogicalPlan p = stack.pop();
      Relations.Rel rel = LineageNodes.relation(p, redactor);
      if (rel != null) {
        found.add(new ColumnOrigin(rel.name, rel.kind, null, How.DIRECT));
      } else if (p instanceof CTERelationRef) {
        LogicalPlan def = cteDefinitions.get(((CTERelationRef) p).cteId());
        if (def != null && def != plan) {
          found.addAll(rowsOf(def));
        }
      } else {
        scala.collection.Iterator<LogicalPlan> it = p.children().iterator();
        while (it.hasNext()) {
          stack.push(it.next());
        }
      }
    }
    rowsOf.put(plan, found);
    return found;
  }

  /** The entries: each output column's origins in column order, then the row-level ones. */
  private List<Map<String, Object>> entries(LogicalPlan query, List<String> warnings) {
    List<Map<String, Object>> out = new ArrayList<>();
    Map<String, String> unknownColumns = new LinkedHashMap<>();
    int total = 0;
    scala.collection.Iterator<Attribute> it = query.output().iterator();
    while (it.hasNext()) {
      Attribute a = it.next();
      long id = a.exprId().id();
      String name = displayNames.getOrDefault(id, a.name());
      if (unknown.containsKey(id)) {
        unknownColumns.put(name, unknown.get(id));
      }
      for (ColumnOrigin o : originsOf(a)) {
        total += add(out, name, o);
      }
    }
    for (ColumnOrigin o : rowLevel) {
      total += add(out, null, o);
    }
    if (!unknownColumns.isEmpty()) {
      StringBuilder sb = new StringBuilder("column_lineage: incomplete for columns ");
      unknownColumns.forEach((c, why) -> sb.append(c).append(" (").append(why).append("), "));
      warnings.add(sb.substring(0, sb.length() - 2));
    }
    if (total > MAX_ENTRIES) {
      warnings.add("column_lineage: " + (total - MAX_ENTRIES) + " of " + total
          + " entries left out (at most " + MAX_ENTRIES + " per step)");
    }
    return out;
  }

  private static int add(List<Map<String, Object>> out, String column, ColumnOrigin o) {
    if (out.size() < MAX_ENTRIES) {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("column", column);
      m.put("input", o.input());
      m.put("input_kind", o.kind());
      m.put("input_column", o.column());
      m.put("how", o.how().label);
      out.add(m);
    }
    return 1;
  }
}
