package io.pipetrace.capture;

import io.pipetrace.compat.SparkCompat;
import io.pipetrace.redact.Redactor;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.regex.Pattern;

import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.trees.TreeNode;

/** Plan texts with a size cap, and the plan fingerprint. */
public final class PlanText {
  static final String MARKER = "\n... [truncated by pipetrace at %d chars; raise spark.pipetrace.plan_max_chars]";
  private static final Pattern EXPR_ID = Pattern.compile("#\\d+L?");
  private static final int MAX_FINGERPRINT_NODES = 100_000;
  private static final int MAX_FINGERPRINT_NODE_CHARS = 10_000;

  /**
   * A text capped for storage (a plan, the output schema) and whether it was cut. It is
   * redacted lazily, on first use: in a step that is on pipetrace's writer thread
   * ({@link io.pipetrace.spool.StepWriter}), not Spark's listener thread, where only the
   * rendering happens.
   *
   * <p>Its redacted text, JSON and UTF-8 bytes are made once: a DataFrame run again stores the
   * same (up to plan_max_chars long) text in every step, and escaping it for the spool was a
   * third of such a step's capture time.
   */
  public static final class Text implements com.fasterxml.jackson.databind.JsonSerializable {
    final boolean truncated;
    private final int max;
    private Redactor redactor;
    private String rendered;       // not redacted yet: up to max + Redactor.MARGIN chars
    private String text;
    private byte[] utf8;
    private byte[] escaped;

    /** {@code rendered} is cut at most MARGIN past {@code max}; {@code cut}: it was longer. */
    Text(String rendered, int max, boolean cut, Redactor redactor) {
      this.rendered = rendered;
      this.max = max;
      this.truncated = cut || (rendered != null && rendered.length() > max);
      this.redactor = redactor;
    }

    boolean isEmpty() {
      return rendered == null && text == null;
    }

    /** The redacted text, cut at the cap with a marker when the rendering was longer. */
    synchronized String text() {
      if (text == null && rendered != null) {
        String out = redactor.redact(rendered);
        if (truncated) {
          out = out.substring(0, Math.min(max, out.length())) + String.format(MARKER, max);
        }
        text = out;
        rendered = null;
        redactor = null;
      }
      return text;
    }

    public synchronized byte[] utf8() {
      if (utf8 == null) {
        utf8 = text().getBytes(StandardCharsets.UTF_8);
      }
      return utf8;
    }

    private synchronized byte[] escaped() {
      if (escaped == null) {
        escaped = com.fasterxml.jackson.core.io.JsonStringEncoder.getInstance()
            .quoteAsUTF8(text());
      }
      return escaped;
    }

    @Override
    public void serialize(com.fasterxml.jackson.core.JsonGenerator gen,
        com.fasterxml.jackson.databind.SerializerProvider provider) throws java.io.IOException {
      byte[] b = escaped();
      gen.writeRawUTF8String(b, 0, b.length);  // adds the quotes, escapes nothing more
    }

    @Override
    public void serializeWithType(com.fasterxml.jackson.core.JsonGenerator gen,
        com.fasterxml.jackson.databind.SerializerProvider provider,
        com.fasterxml.jackson.databind.jsontype.TypeSerializer typeSer) throws java.io.IOException {
      serialize(gen, provider);
    }

    @Override
    public String toString() {
      return text();
    }
  }

  /**
   * {@code first}, a header line, then {@code second}, as one Text capped at {@code first}'s cap:
   * a write command's own plan followed by the plan of the query it wrote. Neither is redacted
   * here; the result is, when first used (on the writer thread).
   */
  static Text append(Text first, String header, Text second) {
    String a;
    String b;
    synchronized (first) {
      a = first.rendered != null ? first.rendered : first.text;
    }
    synchronized (second) {
      b = second.rendered != null ? second.rendered : second.text;
    }
    if (b == null) {
      return first;
    }
    Redactor r = first.redactor != null ? first.redactor
        : second.redactor != null ? second.redactor : Redactor.NONE;
    Text joined = capped((a == null ? "" : a.stripTrailing() + "\n\n") + header + "\n" + b, first.max, r);
    return first.truncated || second.truncated ? new Text(joined.rendered, first.max, true, r)
        : joined;
  }

  /**
   * {@code s} as a capped Text: kept up to MARGIN past the cap (see {@link Redactor#MARGIN}),
   * redacted and cut at the cap when first used.
   */
  static Text capped(String s, int max, Redactor redactor) {
    int limit = limit(max);
    return s == null ? new Text(null, max, false, redactor)
        : new Text(s.length() > limit ? s.substring(0, limit) : s, max, s.length() > limit,
            redactor);
  }

  private static int limit(int max) {
    return (int) Math.min((long) max + Redactor.MARGIN, Integer.MAX_VALUE - 64);
  }

  /** Thrown by the bounded appender to stop Spark's tree printer once the cap is reached. */
  private static final class Full extends RuntimeException {
    Full() {
      super(null, null, false, false);
    }
  }

  private PlanText() {}

  /**
   * The plan's tree string, never longer than {@code max} chars plus the marker. Spark's printer
   * streams into our appender, which stops it at the cap: a 2,000-node plan costs no more
   * memory than the cap.
   */
  static Text of(TreeNode<?> plan, int max, Redactor redactor) {
    if (plan == null) {
      return new Text(null, max, false, redactor);
    }
    // Rendered a margin past the cap; redacted, then cut at the cap, when first used.
    int limit = limit(max);
    StringBuilder sb = new StringBuilder(Math.min(limit, 16_384));
    boolean[] full = {false};
    scala.Function1<String, scala.runtime.BoxedUnit> append = s -> {
      int room = limit - sb.length();
      if (s.length() > room) {
        sb.append(s, 0, Math.max(0, room));
        full[0] = true;
        throw new Full();
      }
      sb.append(s);
      return scala.runtime.BoxedUnit.UNIT;
    };
    try {
      SparkCompat.get().treeString(plan, append, 25);
    } catch (Full stop) {
      // cap reached
    }
    return new Text(sb.toString(), max, full[0], redactor);
  }

  /**
   * SHA-256 over the analyzed plan's operators and expressions with expression ids removed, and
   * with relations named by table and format only: the same code on the same inputs gives the
   * same fingerprint in every run (paths, temp dirs and ids don't leak in); a changed filter,
   * join, projection or aggregate changes it.
   */
  static String fingerprint(LogicalPlan plan, Redactor redactor) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      Deque<Object[]> stack = new ArrayDeque<>();
      stack.push(new Object[] {plan, 0});
      int budget = MAX_FINGERPRINT_NODES;
      while (!stack.isEmpty() && budget-- > 0) {
        Object[] top = stack.pop();
        LogicalPlan p = (LogicalPlan) top[0];
        int depth = (Integer) top[1];
        // Redacted: with literal masking on, a hash of the plan must not reveal the literals.
        md.update((depth + ":" + redactor.redact(describe(p)) + "\n")
            .getBytes(StandardCharsets.UTF_8));
        java.util.List<LogicalPlan> next = new java.util.ArrayList<>();
        collect(next, p.children().iterator());
        collect(next, p.innerChildren().iterator());
        for (int i = next.size() - 1; i >= 0; i--) {
          stack.push(new Object[] {next.get(i), depth + 1});
        }
      }
      StringBuilder hex = new StringBuilder();
      for (byte b : md.digest()) {
        hex.append(String.format("%02x", b));
      }
      return hex.toString();
    } catch (Throwable t) {
      return null;
    }
  }

  private static void collect(java.util.List<LogicalPlan> out, scala.collection.Iterator<?> it) {
    while (it.hasNext()) {
      Object o = it.next();
      if (o instanceof LogicalPlan) {
        out.add((LogicalPlan) o);
      }
    }
  }

  private static String describe(LogicalPlan p) {
    Relations.Rel out = Relations.output(p, NO_REDACTION);
    if (out != null) {
      // Writes: what is written and how, not where on disk (temp dirs differ between runs).
      return p.nodeName() + "(" + out.format + "," + out.mode + ","
          + ("table".equals(out.kind) ? out.name : "path") + ")";
    }
    if (p.children().isEmpty()) {
      StringBuilder sb = new StringBuilder(p.nodeName()).append('[');
      scala.collection.Iterator<?> attrs = p.output().iterator();
      while (attrs.hasNext()) {
        Expression a = (Expression) attrs.next();
        sb.append(a.dataType().simpleString()).append(',');
      }
      sb.append(']');
      java.util.List<Relations.Rel> in = Relations.inputs(p, NO_REDACTION);
      for (Relations.Rel r : in) {
        sb.append(r.kind).append(':').append(r.format).append(':')
            .append("table".equals(r.kind) ? r.name : "");
      }
      if (p instanceof org.apache.spark.sql.catalyst.plans.logical.Range) {
        sb.append(p.simpleString(25));
      }
      return EXPR_ID.matcher(sb).replaceAll("");
    }
    String s;
    try {
      s = p.simpleString(25);
    } catch (Throwable t) {
      s = p.nodeName();
    }
    if (s.length() > MAX_FINGERPRINT_NODE_CHARS) {
      // A node holding a 10 MB literal: hashed by its start and its length, in O(cap).
      s = s.substring(0, MAX_FINGERPRINT_NODE_CHARS) + "…" + s.length();
    }
    return EXPR_ID.matcher(s).replaceAll("");
  }

  private static final Redactor NO_REDACTION = Redactor.NONE;
}
