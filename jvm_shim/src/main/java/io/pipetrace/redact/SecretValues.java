package io.pipetrace.redact;

import io.pipetrace.health.Log;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.SetCommand;

/**
 * The values of sensitive settings this JVM has seen, masked wherever they appear. It only
 * grows: a step is captured on Spark's listener thread after the action ran, and an agent may
 * have unset the setting by then ({@code SET k=v; action; RESET k}). So values are learned from
 * what Spark snapshots at action time -- each SQL execution's modified settings, each job's
 * properties, the SET command's own plan -- as well as from the session's settings.
 *
 * <p>Which settings are sensitive: Spark's {@code spark.redaction.regex} and our broader
 * {@link #SENSITIVE_NAME}. Values of 6+ characters are masked wherever they occur; shorter ones
 * (a 5-character password) only as whole tokens, and only for names that surely hold secrets
 * ({@link #SECRET_NAME}) -- masking every "128" of a key-length setting would blank plans.
 */
public final class SecretValues {
  /** JVM-wide: values learned in one session are masked in every session's steps too. */
  public static final SecretValues KNOWN = new SecretValues();

  static final Pattern SENSITIVE_NAME = Pattern.compile(
      "(?i)(password|passwd|pwd|secret|token|credential|sas|sig|signature|key|auth)");
  static final Pattern SECRET_NAME = Pattern.compile(
      "(?i)(password|passwd|pwd|secret|token|credential|signature|sas\\b|sas[._-]"
          + "|(access|account|private|session|api|shared|storage|client|signing)[._-]?key)");
  static final int MIN_LONG = 6;
  private static final int MAX_VALUES = 1_024;
  private static final Set<String> NOT_SECRETS = Set.of("true", "false", "null", "none");

  private final Set<String> values = new LinkedHashSet<>();
  private volatile int version;
  // Whether a setting name is sensitive, per key regex: job properties repeat the same ~100
  // names on every job, and this keeps their check to a map lookup.
  private final Map<String, Boolean> sensitiveByName = new ConcurrentHashMap<>();
  private volatile Pattern keyRegexOfCache;

  /** Changes whenever a value is learned: redactors built from an older version are stale. */
  int version() {
    return version;
  }

  synchronized List<String> snapshot() {
    return new ArrayList<>(values);
  }

  /** Learn {@code value} if {@code key} names a secret; true when it was new. */
  boolean learn(String key, String value, Pattern sparkKeyRegex) {
    if (key == null || value == null || value.isEmpty() || value.contains(Redactor.MASK)
        || !isSensitive(key, sparkKeyRegex)) {
      return false;
    }
    if (value.length() < MIN_LONG && (NOT_SECRETS.contains(value.toLowerCase(Locale.ROOT))
        || !(SECRET_NAME.matcher(key).find()
            || (sparkKeyRegex != null && sparkKeyRegex.matcher(key).find())))) {
      return false;
    }
    synchronized (this) {
      if (values.contains(value)) {
        return false;
      }
      if (values.size() >= MAX_VALUES) {
        Log.warnOnce("secret-values-full", "pipetrace: more than " + MAX_VALUES + " sensitive"
            + " setting values seen; newer ones are masked only while they are set");
        return false;
      }
      values.add(value);
      version++;
      return true;
    }
  }

  /** A job's properties: every spark.* session setting as it was when the job was submitted. */
  public void learn(Properties props, Pattern sparkKeyRegex) {
    if (props == null) {
      return;
    }
    for (String key : props.stringPropertyNames()) {
      learn(key, props.getProperty(key), sparkKeyRegex);
    }
  }

  /** Settings as Spark posted them with an execution (sensitive ones may be redacted already). */
  public void learn(scala.collection.Map<String, String> settings, Pattern sparkKeyRegex) {
    settings.foreach(kv -> learn(kv._1(), kv._2(), sparkKeyRegex));
  }

  /** {@code SET key=value}: the plan keeps the value even after a later RESET. */
  public void learn(LogicalPlan plan, Pattern sparkKeyRegex) {
    if (plan instanceof SetCommand) {
      scala.Option<scala.Tuple2<String, scala.Option<String>>> kv = ((SetCommand) plan).kv();
      if (kv.isDefined() && kv.get()._2().isDefined()) {
        learn(kv.get()._1(), kv.get()._2().get(), sparkKeyRegex);
      }
    }
  }

  private boolean isSensitive(String key, Pattern sparkKeyRegex) {
    if (keyRegexOfCache != sparkKeyRegex) {
      sensitiveByName.clear();
      keyRegexOfCache = sparkKeyRegex;
    }
    Boolean known = sensitiveByName.get(key);
    if (known == null) {
      // The strict names only: a value learned here is masked everywhere, and the broad rule
      // made Databricks' spark.databricks.task.taskKey ("features") a secret.
      known = SECRET_NAME.matcher(key).find()
          || (sparkKeyRegex != null && sparkKeyRegex.matcher(key).find());
      if (sensitiveByName.size() < 10_000) {
        sensitiveByName.put(key, known);
      }
    }
    return known;
  }
}
