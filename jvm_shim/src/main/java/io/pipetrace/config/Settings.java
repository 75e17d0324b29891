package io.pipetrace.config;

import io.pipetrace.health.Log;

import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.SparkConf;

/**
 * pipetrace settings. The names are shared by {@code attach(spark, ...)} keyword arguments,
 * Spark conf ({@code spark.pipetrace.<name>}) and the CLI, so a user learns them once.
 */
public final class Settings {
  static final String PREFIX = "spark.pipetrace.";
  static final String[] KNOWN = {
      "table", "spool", "run_id", "tags", "enabled", "plan_max_chars", "max_operators",
      "mask_literals", "segment_max_steps", "segment_max_age_ms", "writer", "format",
      "resume_seq", "resume_hash", "hmac_key_file"};

  public final String table;           // destination table (path or catalog name); null = ingest decides
  public final Path spool;             // spool root; a run writes to spool/run_id
  public final String runId;           // null = generate one
  public final Map<String, String> tags;
  public final boolean enabled;
  public final int planMaxChars;       // cap of each plan text
  public final int maxOperators;       // cap of the operators list of a step
  public final boolean maskLiterals;   // replace literal values in plans/descriptions with ***
  public final int segmentMaxSteps;    // seal a spool segment after this many steps
  public final long segmentMaxAgeMs;   // ... or when its first step is this old
  public final String writer;          // auto | spark | delta-rs | spool (see SparkSink.choose)
  public final String format;          // table format of Spark's writer: delta (default), parquet, json...
  public final long resumeSeq;         // a reused run id: the last seq already recorded (0: none)
  public final String resumeHash;      // ... and that step's row_hash, to chain the next one to
  public final String hmacKeyFile;     // file holding the row-hash key; null = $PIPETRACE_HMAC_KEY or none

  private Settings(Map<String, String> raw) {
    warnUnknown(raw.keySet());
    String t = Rules.strip(raw.get("table"));   // stripped as Python strips it
    table = t == null || t.isEmpty() ? null : t;
    spool = Rules.spool(raw.get("spool"), System::getenv, System.getProperty("user.home"));
    runId = blankToNull(raw.get("run_id"));
    tags = parseTags(raw.get("tags"));
    enabled = !"false".equalsIgnoreCase(raw.getOrDefault("enabled", "true").trim());
    planMaxChars = (int) parseLong(raw, "plan_max_chars", 100_000, 1_000, Integer.MAX_VALUE);
    maxOperators = (int) parseLong(raw, "max_operators", 2_000, 10, 1_000_000);
    maskLiterals = "true".equalsIgnoreCase(raw.getOrDefault("mask_literals", "false").trim());
    segmentMaxSteps = (int) parseLong(raw, "segment_max_steps", 500, 1, 1_000_000);
    segmentMaxAgeMs = parseLong(raw, "segment_max_age_ms", 1_000, 10, 3_600_000);
    String w = blankToNull(raw.get("writer"));
    writer = w == null ? "auto" : w.toLowerCase(java.util.Locale.ROOT);
    String f = blankToNull(raw.get("format"));
    format = f == null ? "delta" : f.toLowerCase(java.util.Locale.ROOT);
    resumeSeq = parseLong(raw, "resume_seq", 0, 0, Long.MAX_VALUE);
    resumeHash = blankToNull(raw.get("resume_hash"));
    hmacKeyFile = blankToNull(raw.get("hmac_key_file"));
  }

  /** Settings from Spark conf: every {@code spark.pipetrace.*} key. */
  public static Settings fromConf(SparkConf conf) {
    Map<String, String> raw = new LinkedHashMap<>();
    for (scala.Tuple2<String, String> kv : conf.getAllWithPrefix(PREFIX)) {
      raw.put(kv._1(), kv._2());
    }
    return new Settings(raw);
  }

  /** Settings from the JSON object attach() sends; conf values fill what it leaves out. */
  public static Settings fromJson(String json, SparkConf conf) throws Exception {
    Map<String, String> raw = new LinkedHashMap<>();
    for (scala.Tuple2<String, String> kv : conf.getAllWithPrefix(PREFIX)) {
      raw.put(kv._1(), kv._2());
    }
    JsonNode node = new ObjectMapper().readTree(json);
    node.fields().forEachRemaining(e -> {
      JsonNode v = e.getValue();
      if (v == null || v.isNull()) {
        return;
      }
      raw.put(e.getKey(), v.isTextual() ? v.asText() : v.toString());
    });
    return new Settings(raw);
  }

  /** A misspelt setting is otherwise silently ignored: say so once, with the names we know. */
  static void warnUnknown(Iterable<String> keys) {
    for (String key : keys) {
      if (java.util.Arrays.asList(KNOWN).contains(key)) {
        continue;
      }
      String closest = null;
      int best = Integer.MAX_VALUE;
      for (String known : KNOWN) {
        int d = distance(key, known);
        if (d < best) {
          best = d;
          closest = known;
        }
      }
      String hint = best <= 2 ? " Did you mean " + PREFIX + closest + "?" : "";
      Log.warnOnce("unknown-setting-" + key, "pipetrace: ignoring unknown setting " + PREFIX
          + key + "." + hint + " Known settings: " + PREFIX + String.join(", " + PREFIX, KNOWN));
    }
  }

  /** Levenshtein distance, for the "did you mean" hint. */
  static int distance(String a, String b) {
    int[] prev = new int[b.length() + 1];
    int[] cur = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      prev[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      cur[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
        cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[b.length()];
  }

  private static String blankToNull(String s) {
    return s == null || s.trim().isEmpty() ? null : s.trim();
  }

  private static long parseLong(Map<String, String> raw, String key, long dflt, long min, long max) {
    String v = raw.get(key);
    if (v == null) {
      return dflt;
    }
    try {
      long n = Long.parseLong(v.trim());
      return Math.max(min, Math.min(max, n));
    } catch (NumberFormatException e) {
      Log.warnOnce("bad-setting-" + key, "pipetrace: ignoring " + PREFIX + key + "=" + v
          + " (not a number); using " + dflt);
      return dflt;
    }
  }

  /** Tags come as a JSON object ({"team":"risk"}) or as k=v pairs separated by commas. */
  static Map<String, String> parseTags(String s) {
    if (s == null || s.trim().isEmpty()) {
      return Collections.emptyMap();
    }
    Map<String, String> tags = new LinkedHashMap<>();
    String t = s.trim();
    if (t.startsWith("{")) {
      try {
        new ObjectMapper().readTree(t).fields().forEachRemaining(
            e -> tags.put(e.getKey(), e.getValue().isTextual() ? e.getValue().asText()
                : e.getValue().toString()));
        return Collections.unmodifiableMap(tags);
      } catch (Exception e) {
        Log.warnOnce("bad-tags", "pipetrace: spark.pipetrace.tags is not valid JSON; ignoring it");
        return Collections.emptyMap();
      }
    }
    for (String pair : t.split(",")) {
      int eq = pair.indexOf('=');
      if (eq > 0) {
        tags.put(pair.substring(0, eq).trim(), pair.substring(eq + 1).trim());
      }
    }
    return Collections.unmodifiableMap(tags);
  }
}
