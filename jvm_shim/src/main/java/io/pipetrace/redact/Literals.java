package io.pipetrace.redact;

import io.pipetrace.capture.Operators;

import java.util.ArrayDeque;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.WeakHashMap;
import java.util.regex.Pattern;

import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.Literal;
import org.apache.spark.sql.catalyst.plans.QueryPlan;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.types.StringType;

/**
 * mask_literals: the literal values of an action's plans (PII in filter values), as one pattern
 * that masks them as whole tokens in every text pipetrace stores.
 *
 * <p>Literals are read from all three plans, because the optimizer rewrites them: LIKE 'abc%'
 * becomes StartsWith(name, abc), constants are folded ('a' || 'b' becomes 'ab', 2 * 500 becomes
 * 1000), and only the rendered form of a date literal (2031-07-19) appears in plan text, not its
 * value (days since 1970). A literal is also masked where it names a column (lit("x") is the
 * column x#12), hence no '#' after a match is required to be absent.
 */
public final class Literals {
  private static final int MAX_NODES = 50_000;   // over all three plans of one action
  private static final int LONG = 1_000;         // longer literals are masked by their start
  private static final Map<QueryExecution, Optional<Pattern>> BY_QE =
      Collections.synchronizedMap(new WeakHashMap<>());

  private Literals() {}

  /** The mask of this action's literals (null when it has none), made once per QueryExecution. */
  public static Pattern of(QueryExecution qe) {
    Optional<Pattern> p = BY_QE.get(qe);
    if (p == null) {
      p = Optional.ofNullable(pattern(collect(qe)));
      BY_QE.put(qe, p);
    }
    return p.orElse(null);
  }

  /**
   * Literal values worth masking, as plan text shows them: strings, and other values of 3+
   * characters (short numbers are everywhere in plan text and rarely personal data).
   */
  static Set<String> collect(QueryExecution qe) {
    Set<String> out = new LinkedHashSet<>();
    int[] budget = {MAX_NODES};
    walk(qe.analyzed(), out, budget);
    // A failed action may have no optimized or physical plan: its analyzed literals still count.
    try {
      walk(qe.optimizedPlan(), out, budget);
    } catch (Throwable t) {
      // none
    }
    try {
      walk(qe.executedPlan(), out, budget);
    } catch (Throwable t) {
      // none
    }
    return out;
  }

  private static void walk(Object root, Set<String> out, int[] budget) {
    ArrayDeque<Object> todo = new ArrayDeque<>();
    todo.add(root);
    while (budget[0] > 0 && !todo.isEmpty()) {
      budget[0]--;
      Object node = todo.poll();
      if (node instanceof SparkPlan) {
        node = Operators.unwrap((SparkPlan) node);
      }
      if (node instanceof Literal) {
        add((Literal) node, out);
      } else if (node instanceof QueryPlan) {
        QueryPlan<?> p = (QueryPlan<?>) node;
        p.children().foreach(todo::add);
        p.innerChildren().foreach(todo::add);
        p.expressions().foreach(todo::add);
        if (p instanceof SparkPlan) {
          ((SparkPlan) p).subqueries().foreach(todo::add);
        }
      } else if (node instanceof Expression) {
        ((Expression) node).children().foreach(todo::add);
      }
    }
  }

  private static void add(Literal lit, Set<String> out) {
    if (lit.value() == null) {
      return;
    }
    boolean isString = lit.dataType() instanceof StringType;
    for (String text : new String[] {lit.value().toString(), rendered(lit)}) {
      if (text != null && ((isString && !text.isEmpty()) || text.length() >= 3)) {
        out.add(text);
      }
    }
  }

  private static String rendered(Literal lit) {
    try {
      return lit.toString();   // dates and timestamps as plan text shows them
    } catch (Throwable t) {
      return null;
    }
  }

  /** Whole-token pattern of these values (null for none). */
  static Pattern pattern(Collection<String> values) {
    if (values.isEmpty()) {
      return null;
    }
    return Pattern.compile("(?<![\\w#])" + alternation(values) + "(?![\\w])");
  }

  /**
   * {@code (?:v1|v2|...)}, longest first so that a value wins over its own prefix. A value over
   * 1,000 characters matches by its start and the rest of its line: plan text may show it cut.
   */
  static String alternation(Collection<String> values) {
    StringBuilder alt = new StringBuilder("(?:");
    values.stream().sorted(Comparator.comparingInt(String::length).reversed()).forEach(v -> {
      if (alt.length() > 3) {
        alt.append('|');
      }
      alt.append(v.length() > LONG ? Pattern.quote(v.substring(0, LONG)) + "[^\\n]*"
          : Pattern.quote(v));
    });
    return alt.append(')').toString();
  }
}
