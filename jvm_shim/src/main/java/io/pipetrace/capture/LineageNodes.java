package io.pipetrace.capture;

import io.pipetrace.capture.ColumnOrigin.How;
import io.pipetrace.redact.Redactor;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import org.apache.spark.sql.catalyst.expressions.Alias;
import org.apache.spark.sql.catalyst.expressions.And;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.BinaryComparison;
import org.apache.spark.sql.catalyst.expressions.EqualNullSafe;
import org.apache.spark.sql.catalyst.expressions.EqualTo;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.expressions.ToPrettyString;
import org.apache.spark.sql.catalyst.plans.logical.Aggregate;
import org.apache.spark.sql.catalyst.plans.logical.CTERelationDef;
import org.apache.spark.sql.catalyst.plans.logical.CTERelationRef;
import org.apache.spark.sql.catalyst.plans.logical.Deduplicate;
import org.apache.spark.sql.catalyst.plans.logical.Distinct;
import org.apache.spark.sql.catalyst.plans.logical.Expand;
import org.apache.spark.sql.catalyst.plans.logical.Filter;
import org.apache.spark.sql.catalyst.plans.logical.Generate;
import org.apache.spark.sql.catalyst.plans.logical.Join;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.catalyst.plans.logical.SetOperation;
import org.apache.spark.sql.catalyst.plans.logical.Sort;
import org.apache.spark.sql.catalyst.plans.logical.Union;
import org.apache.spark.sql.catalyst.plans.logical.Window;

/**
 * One small rule per kind of plan node: which new columns it defines from which (Project,
 * Aggregate, Window, Generate, Union, Expand, a CTE reference, a relation leaf), and which
 * columns decide its rows (Filter, Join, Aggregate's grouping, Sort, dedup, Intersect/Except).
 * Nodes no rule knows pass their children's columns through; a column a node adds that no rule
 * defines is marked unknown, and so is every column computed from it.
 */
final class LineageNodes {
  private interface Rule {
    boolean apply(LogicalPlan p, ColumnLineage s);
  }

  private static final List<Rule> RULES = List.of(
      LineageNodes::cteReference, LineageNodes::relationLeaf, LineageNodes::cteDefinition,
      LineageNodes::project, LineageNodes::aggregate, LineageNodes::window,
      LineageNodes::generate, LineageNodes::union, LineageNodes::expand,
      LineageNodes::setOperation, LineageNodes::filter, LineageNodes::join, LineageNodes::sort,
      LineageNodes::dedup);

  private LineageNodes() {}

  /** Applies the first rule that knows {@code p}, then marks the columns none defined. */
  static void apply(LogicalPlan p, ColumnLineage s) {
    for (Rule rule : RULES) {
      if (rule.apply(p, s)) {
        break;
      }
    }
    scala.collection.Iterator<Attribute> it = p.output().iterator();
    while (it.hasNext()) {
      Attribute a = it.next();
      if (!s.attributes.containsKey(a.exprId().id())) {
        s.define(a, Set.of(), p.nodeName() + " not followed");
      }
    }
  }

  /** The input a leaf is, named as {@code inputs} names it; null for other nodes. */
  static Relations.Rel relation(LogicalPlan p, Redactor redactor) {
    if (!p.children().isEmpty() || p instanceof CTERelationRef) {
      return null;
    }
    try {
      return Relations.input(p, redactor);
    } catch (Throwable t) {
      return Relations.other(p);  // as Relations.inputs names it
    }
  }

  private static boolean relationLeaf(LogicalPlan p, ColumnLineage s) {
    Relations.Rel rel = relation(p, s.redactor);
    if (rel == null) {
      return false;
    }
    scala.collection.Iterator<Attribute> it = p.output().iterator();
    while (it.hasNext()) {
      Attribute a = it.next();
      s.define(a, Set.of(new ColumnOrigin(rel.name, rel.kind, a.name(), How.DIRECT)), null);
    }
    return true;
  }

  private static boolean cteDefinition(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof CTERelationDef)) {
      return false;
    }
    s.cteDefinitions.put(((CTERelationDef) p).id(), ((CTERelationDef) p).child());
    return true;
  }

  /** A reference to a CTE: its columns are the definition's, by position. */
  private static boolean cteReference(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof CTERelationRef)) {
      return false;
    }
    LogicalPlan def = s.cteDefinitions.get(((CTERelationRef) p).cteId());
    if (def == null) {
      return false;  // a recursive reference: its columns stay unknown
    }
    positional(p.output(), def.output(), s, false);
    return true;
  }

  private static void positional(scala.collection.Seq<Attribute> to,
      scala.collection.Seq<Attribute> from, ColumnLineage s, boolean merge) {
    scala.collection.Iterator<Attribute> t = to.iterator();
    scala.collection.Iterator<Attribute> f = from.iterator();
    while (t.hasNext() && f.hasNext()) {
      Attribute target = t.next();
      Attribute source = f.next();
      String why = s.unknown.get(source.exprId().id());
      if (merge) {
        s.merge(target, s.originsOf(source), why);
      } else {
        s.define(target, s.originsOf(source), why);
      }
    }
  }

  private static boolean project(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Project)) {
      return false;
    }
    named(((Project) p).projectList(), ((Project) p).child(), s);
    return true;
  }

  private static boolean aggregate(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Aggregate)) {
      return false;
    }
    Aggregate a = (Aggregate) p;
    named(a.aggregateExpressions(), a.child(), s);
    rowLevel(a.groupingExpressions().iterator(), a.child(), How.GROUP_BY, s);
    return true;
  }

  private static boolean window(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Window)) {
      return false;
    }
    named(((Window) p).windowExpressions(), ((Window) p).child(), s);
    return true;
  }

  /** explode and friends: each generated column is computed from the generator's input. */
  private static boolean generate(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Generate)) {
      return false;
    }
    Generate g = (Generate) p;
    LineageExpressions.Found found = LineageExpressions.of((Expression) g.generator(), How.DIRECT, g.child(), s);
    scala.collection.Iterator<Attribute> it = g.generatorOutput().iterator();
    while (it.hasNext()) {
      s.define(it.next(), found.origins, found.unknown);
    }
    return true;
  }

  /** A union's column i is every child's column i (it keeps the first child's ids). */
  private static boolean union(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Union)) {
      return false;
    }
    scala.collection.Iterator<LogicalPlan> children = p.children().iterator();
    while (children.hasNext()) {
      positional(p.output(), children.next().output(), s, true);
    }
    return true;
  }

  /** Expand (rollup, cube, unpivot): column i is computed from every projection's item i. */
  private static boolean expand(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Expand)) {
      return false;
    }
    Expand e = (Expand) p;
    List<Attribute> output = new ArrayList<>();
    scala.collection.Iterator<Attribute> out = e.output().iterator();
    while (out.hasNext()) {
      output.add(out.next());
    }
    List<Set<ColumnOrigin>> origins = new ArrayList<>();
    String[] why = new String[output.size()];
    for (int i = 0; i < output.size(); i++) {
      origins.add(new LinkedHashSet<>());
    }
    scala.collection.Iterator<? extends scala.collection.Seq<Expression>> rows =
        e.projections().iterator();
    while (rows.hasNext()) {
      scala.collection.Iterator<Expression> items = rows.next().iterator();
      for (int i = 0; i < output.size() && items.hasNext(); i++) {
        LineageExpressions.Found f = LineageExpressions.of(items.next(), How.DIRECT, e.child(), s);
        origins.get(i).addAll(f.origins);
        why[i] = why[i] == null ? f.unknown : why[i];
      }
    }
    for (int i = 0; i < output.size(); i++) {
      s.define(output.get(i), origins.get(i), why[i]);
    }
    return true;
  }

  /** Intersect / Except: the left side's columns; the right side's decide which rows remain. */
  private static boolean setOperation(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof SetOperation) || p instanceof Union) {
      return false;
    }
    SetOperation op = (SetOperation) p;
    rowLevel(op.right().output().iterator(), op.right(), How.FILTER, s);
    return true;
  }

  private static boolean filter(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Filter)) {
      return false;
    }
    rowLevel(((Filter) p).condition(), ((Filter) p).child(), How.FILTER, s);
    return true;
  }

  /**
   * A join's condition: each equality between a column of one side and one of the other is a
   * join key (for both sides); any other part of the condition filters the joined rows.
   */
  private static boolean join(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Join)) {
      return false;
    }
    Join j = (Join) p;
    if (j.condition().isEmpty()) {
      return true;
    }
    List<Expression> conjuncts = new ArrayList<>();
    split(j.condition().get(), conjuncts);
    for (Expression c : conjuncts) {
      How how = isJoinKey(c, j) ? How.JOIN_KEY : How.FILTER;
      rowLevel(c, p, how, s);
    }
    return true;
  }

  private static void split(Expression e, List<Expression> out) {
    if (e instanceof And) {
      split(((And) e).left(), out);
      split(((And) e).right(), out);
    } else {
      out.add(e);
    }
  }

  private static boolean isJoinKey(Expression c, Join j) {
    if (!(c instanceof EqualTo || c instanceof EqualNullSafe)) {
      return false;
    }
    Expression l = ((BinaryComparison) c).left();
    Expression r = ((BinaryComparison) c).right();
    if (l.references().isEmpty() || r.references().isEmpty()) {
      return false;
    }
    boolean leftRight = l.references().subsetOf(j.left().outputSet())
        && r.references().subsetOf(j.right().outputSet());
    boolean rightLeft = l.references().subsetOf(j.right().outputSet())
        && r.references().subsetOf(j.left().outputSet());
    return leftRight || rightLeft;
  }

  private static boolean sort(LogicalPlan p, ColumnLineage s) {
    if (!(p instanceof Sort)) {
      return false;
    }
    rowLevel(((Sort) p).order().iterator(), ((Sort) p).child(), How.SORT, s);
    return true;
  }

  /** dropDuplicates(keys) and distinct(): the keys decide which rows remain. */
  private static boolean dedup(LogicalPlan p, ColumnLineage s) {
    if (p instanceof Deduplicate) {
      rowLevel(((Deduplicate) p).keys().iterator(), p, How.GROUP_BY, s);
      return true;
    }
    if (p instanceof Distinct) {
      rowLevel(p.output().iterator(), p, How.GROUP_BY, s);
      return true;
    }
    return false;
  }

  private static void rowLevel(scala.collection.Iterator<? extends Expression> it,
      LogicalPlan rowsOf, How how, ColumnLineage s) {
    while (it.hasNext()) {
      rowLevel(it.next(), rowsOf, how, s);
    }
  }

  private static void rowLevel(Expression e, LogicalPlan rowsOf, How how, ColumnLineage s) {
    s.addRowLevel(LineageExpressions.of(e, How.DIRECT, rowsOf, s).origins, how);
  }

  /**
   * A projection list: an attribute passes through; an alias defines a new column from its
   * expression. show() wraps each column in ToPrettyString for display: the column keeps the
   * name the user sees, and the display cast is not counted as a computation.
   */
  private static void named(scala.collection.Seq<? extends NamedExpression> list,
      LogicalPlan child, ColumnLineage s) {
    scala.collection.Iterator<? extends NamedExpression> it = list.iterator();
    while (it.hasNext()) {
      NamedExpression ne = it.next();
      if (!(ne instanceof Alias)) {
        continue;  // an attribute of the child: already known
      }
      Alias alias = (Alias) ne;
      LineageExpressions.Found f = LineageExpressions.of(alias.child(), How.DIRECT, child, s);
      s.define(alias.toAttribute(), f.origins, f.unknown);
      if (alias.child() instanceof ToPrettyString
          && ((ToPrettyString) alias.child()).child() instanceof Attribute) {
        long inner = ((Attribute) ((ToPrettyString) alias.child()).child()).exprId().id();
        Attribute shown = (Attribute) ((ToPrettyString) alias.child()).child();
        s.displayNames.put(alias.exprId().id(), s.displayNames.getOrDefault(inner, shown.name()));
      }
    }
  }
}
