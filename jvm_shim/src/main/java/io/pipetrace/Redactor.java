package io.pipetrace;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;

/**
 * Removes secrets from every string pipetrace stores: Spark's own redaction settings plus our
 * rules for URIs, key=value options and the values of sensitive Spark conf entries.
 */
final class Redactor {
  static final String MASK = "*********(redacted)";

  // Option names whose values are secrets (password, token, secret, key, sas, credential, ...).
  static final Pattern SENSITIVE_NAME = Pattern.compile(
      "(?i)(password|passwd|pwd|secret|token|credential|sas|sig|signature|key|auth)");
  // name=value, name -> value, "name": "value" (the ':' form needs a space or quote so that type
  // strings such as struct<key:string> are left alone).
  private static final String NAME =
      "(?:[\\w.\\-]*(?:password|passwd|pwd|secret|token|credential|sas|sig|signature)[\\w.\\-]*"
          + "|[\\w.\\-]*[_.\\-]key(?:[_.\\-][\\w.\\-]*)?|key|apikey|auth)";
  private static final Pattern KEY_VALUE = Pattern.compile(
      "(?i)(?<![\\w.\\-])(" + NAME + "[\"']?)(\\s*=\\s*|\\s*->\\s*|:\\s+|\"?:\\s*\")"
          + "(?!\\*{9}\\(redacted\\))(\"[^\"]*\"|'[^']*'|[^\\s,;&)\\]}\"'\\[]+)");
  // scheme://user:password@host
  private static final Pattern URI_USERINFO = Pattern.compile(
      "([a-zA-Z][a-zA-Z0-9+.\\-]*://)([^/@\\s:]+):([^/@\\s]+)@");

  private final Pattern sparkStringRegex;   // spark.sql.redaction.string.regex / spark.redaction.string.regex
  private final List<String> secretValues;  // values of conf entries matching spark.redaction.regex
  private final Pattern literals;           // literal values to mask (mask_literals), or null

  /** Leaves text as it is: for values that are hashed, never stored. */
  static final Redactor NONE = new Redactor();

  private Redactor() {
    sparkStringRegex = null;
    secretValues = java.util.Collections.emptyList();
    literals = null;
  }

  private Redactor(Redactor base, Pattern literals) {
    this.sparkStringRegex = base.sparkStringRegex;
    this.secretValues = base.secretValues;
    this.literals = literals;
  }

  /**
   * A redactor that also masks these literal values wherever they appear as a whole token
   * (plan texts, operator descriptions, schemas, errors): PII in filter values.
   */
  Redactor maskingLiterals(java.util.Collection<String> values) {
    if (values.isEmpty()) {
      return this;
    }
    StringBuilder alt = new StringBuilder();
    values.stream().sorted(Comparator.comparingInt(String::length).reversed()).forEach(v -> {
      if (alt.length() > 0) {
        alt.append('|');
      }
      alt.append(Pattern.quote(v));
    });
    return new Redactor(this, Pattern.compile("(?<![\\w#])(?:" + alt + ")(?![\\w#])"));
  }

  Redactor(SparkSession session) {
    SparkConf conf = session.sparkContext().getConf();
    String stringRegex = session.conf().get("spark.sql.redaction.string.regex", null);
    if (stringRegex == null || stringRegex.isEmpty()) {
      stringRegex = conf.get("spark.redaction.string.regex", null);
    }
    sparkStringRegex = compile(stringRegex);
    Pattern keyRegex = compile(conf.get("spark.redaction.regex",
        "(?i)secret|password|token|access[.]?key"));
    List<String> values = new ArrayList<>();
    java.util.Map<String, String> all = new java.util.HashMap<>();
    for (scala.Tuple2<String, String> kv : conf.getAll()) {
      all.put(kv._1(), kv._2());
    }
    // Session settings too: storage keys are often set with spark.conf.set at runtime.
    session.conf().getAll().foreach(kv -> all.put(kv._1(), kv._2()));
    for (java.util.Map.Entry<String, String> kv : all.entrySet()) {
      boolean sensitive = (keyRegex != null && keyRegex.matcher(kv.getKey()).find())
          || SENSITIVE_NAME.matcher(kv.getKey()).find();
      // Short values (true, 1, s3a) would mask half the plan and are not secrets.
      if (sensitive && kv.getValue() != null && kv.getValue().length() >= 6
          && !values.contains(kv.getValue())) {
        values.add(kv.getValue());
      }
    }
    literals = null;
    values.sort(Comparator.comparingInt(String::length).reversed());
    secretValues = values;
  }

  // Redactors are built per step (settings change at runtime); their regexes rarely do.
  private static final java.util.Map<String, java.util.Optional<Pattern>> COMPILED =
      new java.util.concurrent.ConcurrentHashMap<>();

  private static Pattern compile(String regex) {
    if (regex == null || regex.isEmpty()) {
      return null;
    }
    if (COMPILED.size() > 256) {
      COMPILED.clear();
    }
    return COMPILED.computeIfAbsent(regex, r -> {
      try {
        return java.util.Optional.of(Pattern.compile(r));
      } catch (Exception e) {
        Log.warnOnce("bad-redaction-regex", "pipetrace: cannot compile redaction regex " + r);
        return java.util.Optional.empty();
      }
    }).orElse(null);
  }

  // Substrings one of which every NAME match contains (see NAME above).
  private static final String[] NAME_HINTS = {
      "passw", "pwd", "secret", "token", "credential", "sas", "sig", "key", "auth"};

  private static boolean mayNameSecret(String s) {
    String lower = s.toLowerCase(java.util.Locale.ROOT);
    for (String hint : NAME_HINTS) {
      if (lower.contains(hint)) {
        return true;
      }
    }
    return false;
  }

  /**
   * Two redactors are equal when they mask exactly the same things (same Spark regex, secret
   * values and literals): a text redacted by one may be reused for the other.
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
    return secretValues.equals(r.secretValues)
        && patternText(sparkStringRegex).equals(patternText(r.sparkStringRegex))
        && patternText(literals).equals(patternText(r.literals));
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(secretValues, patternText(sparkStringRegex),
        patternText(literals));
  }

  private static String patternText(Pattern p) {
    return p == null ? "" : p.pattern();
  }

  /** A redacted copy of {@code s} (null stays null). */
  String redact(String s) {
    if (s == null || s.isEmpty() || this == NONE) {
      return s;
    }
    String out = s;
    for (String v : secretValues) {
      if (out.contains(v)) {
        out = out.replace(v, MASK);
      }
    }
    // The two rules below are regexes over whole plan texts (up to plan_max_chars, several per
    // step): skip each when the text cannot match it. Every KEY_VALUE match contains one of
    // NAME_HINTS (ASCII case-insensitive, like the regex) and every URI_USERINFO one "://".
    if (out.contains("://")) {
      out = URI_USERINFO.matcher(out).replaceAll("$1$2:" + Matcher.quoteReplacement(MASK) + "@");
    }
    if (mayNameSecret(out)) {
      out = KEY_VALUE.matcher(out).replaceAll("$1$2" + Matcher.quoteReplacement(MASK));
    }
    if (sparkStringRegex != null) {
      out = sparkStringRegex.matcher(out).replaceAll(Matcher.quoteReplacement(MASK));
    }
    if (literals != null) {
      out = literals.matcher(out).replaceAll("***");
    }
    return out;
  }

  /** Redact every string in a row (nested lists and maps too), except the given keys. */
  @SuppressWarnings("unchecked")
  Object redactAll(Object value, java.util.Set<String> skipKeys) {
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
