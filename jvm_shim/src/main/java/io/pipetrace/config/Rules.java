package io.pipetrace.config;

import io.pipetrace.spool.Canonical;
import io.pipetrace.spool.HmacKey;
import io.pipetrace.spool.Run;

import java.io.InputStream;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The rules python/pipetrace applies too, read from pipetrace/rules.json (written once, in
 * python/pipetrace/resources/; python/pipetrace/rules.py reads the same file). The defaults
 * that are code, not patterns (the spool directory, segment file names), mirror
 * python/pipetrace/locations.py and spool.py; tests/fixtures/shared_rules.json holds the cases
 * both sides must pass, checked by tests/test_shared_rules.py through {@link #probe}.
 */
public final class Rules {
  private static final JsonNode RULES = load();
  /** catalog.schema.table: the whole text, after {@link #strip}. */
  static final Pattern TABLE_NAME = Pattern.compile(RULES.at("/table_name/pattern").asText());
  /** A URI scheme at the start of a location (a prefix match); {@link #LOCAL_SCHEME} is local. */
  static final Pattern REMOTE = Pattern.compile(RULES.at("/remote_location/pattern").asText());
  static final String LOCAL_SCHEME = RULES.at("/remote_location/local_scheme").asText();
  /** A spool segment file name: group 1 its number, group 2 ".open" while it is appended. */
  static final Pattern SEGMENT = Pattern.compile(RULES.at("/segment/pattern").asText());
  /** The shape of a generated run id. */
  static final Pattern RUN_ID = Pattern.compile(RULES.at("/run_id/pattern").asText());
  private static final String BLANK = RULES.at("/blank/chars").asText();
  private static final String STEPS_NAME = RULES.at("/runs_table/steps_name").asText();
  private static final String RUNS_NAME = RULES.at("/runs_table/runs_name").asText();
  private static final String RUNS_SUFFIX = RULES.at("/runs_table/suffix").asText();
  /** The status of a run captured by configuration alone (no Python side saw its end). */
  public static final String CONF_RUN_STATUS = RULES.at("/conf_run_end/status").asText();
  /** ... and the reason its row gives. */
  public static final String CONF_RUN_END_REASON = RULES.at("/conf_run_end/end_reason").asText();

  private Rules() {}

  private static JsonNode load() {
    try (InputStream in = Rules.class.getResourceAsStream("/pipetrace/rules.json")) {
      return new ObjectMapper().readTree(in);
    } catch (Exception e) {
      throw new IllegalStateException("pipetrace: rules.json is missing from the jar", e);
    }
  }

  /** Text without the blank characters around it (Python's str.strip() set, not trim()'s). */
  static String strip(String s) {
    if (s == null) {
      return null;
    }
    int from = 0;
    int to = s.length();
    while (from < to && BLANK.indexOf(s.charAt(from)) >= 0) {
      from++;
    }
    while (to > from && BLANK.indexOf(s.charAt(to - 1)) >= 0) {
      to--;
    }
    return s.substring(from, to);
  }

  /** Three dot-separated identifiers name a catalog table; anything else is a path. */
  public static boolean isTableName(String target) {
    return target != null && TABLE_NAME.matcher(strip(target)).matches();
  }

  /** s3://..., abfss://..., dbfs:/...: a location neither this machine's disk nor file:. */
  public static boolean isRemote(String location) {
    return !location.startsWith(LOCAL_SCHEME) && REMOTE.matcher(location).lookingAt();
  }

  /**
   * The run-record table beside a steps table (rules.json runs_table): its last name part
   * pipeline_steps becomes pipeline_runs, any other gets the suffix _runs.
   */
  public static String runsTable(String steps) {
    if (steps == null) {
      return null;
    }
    String s = strip(steps);
    boolean name = isTableName(s);
    if (!name) {
      while (s.length() > 1 && s.endsWith("/")) {
        s = s.substring(0, s.length() - 1);
      }
    }
    // a backticked table part may hold dots itself
    int cut = name && s.endsWith("`") ? s.lastIndexOf('`', s.length() - 2) - 1
        : name ? s.lastIndexOf('.') : s.lastIndexOf('/');
    String head = s.substring(0, cut + 1);
    String last = s.substring(cut + 1);
    String quote = name && last.startsWith("`") && last.endsWith("`") && last.length() > 1
        ? "`" : "";
    String bare = quote.isEmpty() ? last : last.substring(1, last.length() - 1);
    String runs = bare.equals(STEPS_NAME) ? RUNS_NAME : bare + RUNS_SUFFIX;
    return head + quote + runs + quote;
  }

  /** File name of sealed segment n; ASCII digits whatever the JVM's default locale. */
  public static String segmentName(long n) {
    return String.format(Locale.ROOT, "seg-%06d.jsonl", n);
  }

  /** The number of a segment file (sealed or open), or -1 when the name is not a segment's. */
  public static long segmentNumber(String fileName, boolean wantOpen) {
    Matcher m = SEGMENT.matcher(fileName);
    if (!m.matches() || (m.group(2) != null) != wantOpen) {
      return -1;
    }
    try {
      return Long.parseLong(m.group(1));
    } catch (NumberFormatException e) {
      return -1;  // more digits than a long holds: not one of ours
    }
  }

  /**
   * The spool directory, as python/pipetrace/locations.resolve_spool finds it: the setting,
   * else $PIPETRACE_SPOOL, else $PIPETRACE_HOME/spool, else ~/.pipetrace/spool; a leading ~
   * is the user's home, and the result is absolute.
   */
  static Path spool(String setting, Function<String, String> env, String userHome) {
    String chosen = strip(setting);
    if (chosen != null && !chosen.isEmpty()) {
      return absolute(chosen, userHome);
    }
    String spool = env.apply("PIPETRACE_SPOOL");
    if (spool != null && !spool.isEmpty()) {
      return absolute(spool, userHome);
    }
    String home = env.apply("PIPETRACE_HOME");
    Path base = home != null && !home.isEmpty() ? absolute(home, userHome)
        : Paths.get(userHome, ".pipetrace");
    return base.resolve("spool").toAbsolutePath().normalize();
  }

  private static Path absolute(String path, String userHome) {
    String expanded = path.equals("~") ? userHome
        : path.startsWith("~/") ? userHome + path.substring(1) : path;
    return Paths.get(expanded).toAbsolutePath().normalize();
  }

  /**
   * One rule applied to a JSON input, answered as JSON: the entry point of
   * tests/test_shared_rules.py (through {@link io.pipetrace.Bridge#rule}), never called by capture.
   */
  public static Object probe(String rule, JsonNode in) throws Exception {
    switch (rule) {
      case "is_table_name":
        return isTableName(in.asText());
      case "is_remote":
        return isRemote(in.asText());
      case "segment_name":
        return segmentName(in.asLong());
      case "segment_number":
        return segmentNumber(in.get("name").asText(), in.get("open").asBoolean());
      case "new_run_id":
        return Run.newRunId();
      case "is_run_id":
        return RUN_ID.matcher(in.asText()).matches();
      case "spool": {
        Map<String, String> env = new ObjectMapper().convertValue(in.get("env"),
            new com.fasterxml.jackson.core.type.TypeReference<Map<String, String>>() {});
        String setting = in.path("setting").isNull() ? null : in.path("setting").asText(null);
        return spool(setting, env::get, in.get("user_home").asText()).toString();
      }
      case "runs_table":
        return runsTable(in.asText());
      case "schema_version":
        return Version.SCHEMA;
      case "key_id":
        return HmacKey.of(in.asText().getBytes(java.nio.charset.StandardCharsets.UTF_8)).id;
      case "conf_run_row": {
        Map<String, Object> record = new ObjectMapper().convertValue(in,
            new com.fasterxml.jackson.core.type.TypeReference<Map<String, Object>>() {});
        return io.pipetrace.sink.RecordSink.jvmOnlyRow(record);
      }
      case "row_hash": {
        Map<String, Object> row = new ObjectMapper().convertValue(in.get("row"),
            new com.fasterxml.jackson.core.type.TypeReference<Map<String, Object>>() {});
        JsonNode key = in.path("key_text");
        return Canonical.rowHash(row, key.isTextual() ? HmacKey.of(
            key.asText().getBytes(java.nio.charset.StandardCharsets.UTF_8)) : null);
      }
      default:
        throw new IllegalArgumentException("no rule named " + rule);
    }
  }
}
