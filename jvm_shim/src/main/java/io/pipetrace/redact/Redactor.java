package io.pipetrace.redact;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Removes secrets from every string pipetrace stores: the values of sensitive settings
 * ({@link SecretValues}), Spark's {@code spark.sql.redaction.string.regex}, secret-shaped text
 * ({@link SecretRules}) and, with mask_literals, the plan's literal values ({@link Literals}).
 * Immutable; built by {@link Redactors}, which reuses one while the settings don't change.
 */
public final class Redactor {
  static final String MASK = "*********(redacted)";
  /** What replaces a secret (a masked setting value or argument). */
  public static final String MASK_TEXT = MASK;
  /**
   * Text is cut before it is redacted (redacting a 10 MB error costs seconds), but this much
   * further than the cap, and cut again at the cap after redacting: a secret that straddles the
   * first cut lies wholly beyond the second, so no part of it is kept.
   */
  public static final int MARGIN = 8_192;

  /** Leaves text as it is: for values that are hashed, never stored. */
  public static final Redactor NONE = new Redactor(null, List.of(), null);

  /** A redacted text cut to a cap, and whether it was cut. */
  public record Capped(String text, boolean cut) {}

  private final Pattern sparkStringRegex;
  private final List<String> longValues;   // masked wherever they occur, longest first
  private final Pattern shortValues;       // masked as whole tokens only, or null
  private final Pattern literals;          // mask_literals, or null

  Redactor(Pattern sparkStringRegex, Collection<String> secretValues) {
    this(sparkStringRegex, secretValues, null);
  }

  private Redactor(Pattern sparkStringRegex, Collection<String> secretValues, Pattern literals) {
    this.sparkStringRegex = sparkStringRegex;
    List<String> longs = new ArrayList<>();
    List<String> shorts = new ArrayList<>();
    for (String v : secretValues) {
      (v.length() >= SecretValues.MIN_LONG ? longs : shorts).add(v);
    }
    longs.sort(Comparator.comparingInt(String::length).reversed());
    this.longValues = List.copyOf(longs);
    this.shortValues = shorts.isEmpty() ? null
        : Pattern.compile("(?<![\\w])" + Literals.alternation(shorts) + "(?![\\w])");
    this.literals = literals;
  }

  private Redactor(Redactor base, Pattern literals) {
    this.sparkStringRegex = base.sparkStringRegex;
    this.longValues = base.longValues;
    this.shortValues = base.shortValues;
    this.literals = literals;
  }

  /** This redactor, also masking a plan's literal values with {@code ***} (null: none). */
  public Redactor maskingLiterals(Pattern literalPattern) {
    return literalPattern == null ? this : new Redactor(this, literalPattern);
  }

  /** A redacted copy of {@code s} (null stays null). */
  public String redact(String s) {
    if (s == null || s.isEmpty() || this == NONE) {
      return s;
    }
    String out = s;
    for (String v : longValues) {
      if (out.contains(v)) {
        out = out.replace(v, MASK);
      }
    }
    if (shortValues != null) {
      out = shortValues.matcher(out).replaceAll(Matcher.quoteReplacement(MASK));
    }
    out = SecretRules.apply(out);
    if (sparkStringRegex != null) {
      out = sparkStringRegex.matcher(out).replaceAll(Matcher.quoteReplacement(MASK));
    }
    if (literals != null) {
      out = literals.matcher(out).replaceAll("***");
    }
    return out;
  }

  /**
   * {@code s} redacted and cut to at most {@code max} chars, costing O(max) whatever its
   * length (see {@link #MARGIN}).
   */
  public Capped redactCapped(String s, int max) {
    if (s == null) {
      return new Capped(null, false);
    }
    long window = (long) max + MARGIN;
    boolean longer = s.length() > window;
    String out = redact(longer ? s.substring(0, (int) window) : s);
    if (longer || out.length() > max) {
      return new Capped(out.substring(0, Math.min(max, out.length())), true);
    }
    return new Capped(out, false);
  }

  /**
   * "class: message" of a throwable, redacted and capped like {@link #redactCapped}, without
   * first building the whole text (a message can be megabytes).
   */
  public Capped describe(Throwable t, String className, int max) {
    String message = String.valueOf(t.getMessage());
    int room = (int) Math.min((long) max + MARGIN, Integer.MAX_VALUE - 1);
    String head = message.length() > room ? message.substring(0, room) : message;
    Capped c = redactCapped(className + ": " + head, max);
    return c.cut() || head.length() == message.length() ? c : new Capped(c.text(), true);
  }

  /**
   * Two redactors are equal when they mask exactly the same things: a text redacted by one
   * may be reused for the other.
   */
  @Override
  public boolean equals(Object o) {
    if (this == o) {
      return true;
    }
    if (!(o instanceof Redactor)) {
      return false;
    }
    Redactor r = (Redactor) o;
    return longValues.equals(r.longValues)
        && patternText(shortValues).equals(patternText(r.shortValues))
        && patternText(sparkStringRegex).equals(patternText(r.sparkStringRegex))
        && patternText(literals).equals(patternText(r.literals));
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(longValues, patternText(shortValues),
        patternText(sparkStringRegex), patternText(literals));
  }

  private static String patternText(Pattern p) {
    return p == null ? "" : p.pattern();
  }

  /** Redact every string in a row (nested lists and maps too), except the given keys. */
  @SuppressWarnings("unchecked")
  public Object redactAll(Object value, java.util.Set<String> skipKeys) {
    if (value instanceof String) {
      return redact((String) value);
    }
    if (value instanceof java.util.Map) {
      java.util.Map<Object, Object> in = (java.util.Map<Object, Object>) value;
      java.util.Map<Object, Object> out = new java.util.LinkedHashMap<>();
      for (java.util.Map.Entry<Object, Object> e : in.entrySet()) {
        Object key = e.getKey() instanceof String ? redact((String) e.getKey()) : e.getKey();
        out.put(key, skipKeys.contains(e.getKey()) ? e.getValue()
            : redactAll(e.getValue(), java.util.Set.of()));
      }
      return out;
    }
    if (value instanceof List) {
      List<Object> out = new ArrayList<>();
      for (Object o : (List<Object>) value) {
        out.add(redactAll(o, java.util.Set.of()));
      }
      return out;
    }
    return value;
  }
}
