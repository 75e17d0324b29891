package io.pipetrace.redact;

import io.pipetrace.health.Log;

import java.util.Collections;
import java.util.Map;
import java.util.Optional;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.internal.SQLConf;

/**
 * The redactor of a session, reused while neither its settings nor the learned secret values
 * change. Building one reads every setting (regexes over ~100 names); the check is one copy and
 * one comparison of the settings map, so a step pays for the rules only after a change.
 */
public final class Redactors {
  static final String DEFAULT_KEY_REGEX = "(?i)secret|password|token|access[.]?key";

  private static final class Entry {
    final scala.collection.immutable.Map<String, String> settings;
    final Pattern stringRegex;
    final Pattern keyRegex;
    Redactor redactor;
    int version = -1;

    Entry(scala.collection.immutable.Map<String, String> settings, Pattern stringRegex,
        Pattern keyRegex) {
      this.settings = settings;
      this.stringRegex = stringRegex;
      this.keyRegex = keyRegex;
    }
  }

  private static final Map<SQLConf, Entry> BY_CONF = Collections.synchronizedMap(new WeakHashMap<>());
  private static final Map<String, Optional<Pattern>> COMPILED = new ConcurrentHashMap<>();
  private static SparkContext staticLearned;   // whose SparkConf has been learned
  private static Pattern staticKeyRegex;

  private Redactors() {}

  /** The redactor for a step of this session now. */
  public static Redactor of(SparkSession session) {
    return of(session.sessionState().conf(), session.sparkContext());
  }

  /** The redactor of the session whose settings are {@code conf} (a run's record has no step). */
  public static Redactor of(SQLConf conf, SparkContext sc) {
    Pattern keyRegex = keyRegex(sc);
    scala.collection.immutable.Map<String, String> settings = conf.getAllConfs();
    Entry e = BY_CONF.get(conf);
    if (e == null || !e.settings.equals(settings)) {
      Pattern sessionKeys = compile(setting(settings, "spark.redaction.regex", null));
      Pattern keys = sessionKeys != null ? sessionKeys : keyRegex;
      SecretValues.KNOWN.learn(settings, keys);
      String stringRegex = setting(settings, "spark.sql.redaction.string.regex",
          setting(settings, "spark.redaction.string.regex", null));
      Entry changed = new Entry(settings, compile(stringRegex), keys);
      if (e != null && e.stringRegex == changed.stringRegex) {
        // e.g. SET of an unrelated setting: the same rules, unless a value was learned above
        changed.redactor = e.redactor;
        changed.version = e.version;
      }
      e = changed;
      BY_CONF.put(conf, e);
    }
    int version = SecretValues.KNOWN.version();
    if (e.redactor == null || e.version != version) {
      e.redactor = new Redactor(e.stringRegex, SecretValues.KNOWN.snapshot());
      e.version = version;
    }
    return e.redactor;
  }

  /**
   * Whether a setting's name says its value is secret: Spark's spark.redaction.regex, or a name
   * that surely holds one (SecretValues.SECRET_NAME).
   */
  public static boolean sensitiveKey(String key, SparkContext sc) {
    Pattern keys = keyRegex(sc);
    return (keys != null && keys.matcher(key).find())
        || SecretValues.SECRET_NAME.matcher(key).find();
  }

  /**
   * Spark's spark.redaction.regex for this context; the context's (static) settings are learned
   * once, on first use.
   */
  public static synchronized Pattern keyRegex(SparkContext sc) {
    if (staticLearned != sc) {
      SparkConf conf = sc.getConf();
      staticKeyRegex = compile(conf.get("spark.redaction.regex", DEFAULT_KEY_REGEX));
      for (scala.Tuple2<String, String> kv : conf.getAll()) {
        SecretValues.KNOWN.learn(kv._1(), kv._2(), staticKeyRegex);
      }
      staticLearned = sc;
    }
    return staticKeyRegex;
  }

  private static String setting(scala.collection.immutable.Map<String, String> settings,
      String key, String dflt) {
    scala.Option<String> v = settings.get(key);
    return v.isDefined() && !v.get().isEmpty() ? v.get() : dflt;
  }

  private static Pattern compile(String regex) {
    if (regex == null || regex.isEmpty()) {
      return null;
    }
    if (COMPILED.size() > 256) {
      COMPILED.clear();
    }
    return COMPILED.computeIfAbsent(regex, r -> {
      try {
        return Optional.of(Pattern.compile(r));
      } catch (Exception ex) {
        Log.warnOnce("bad-redaction-regex", "pipetrace: cannot compile redaction regex " + r);
        return Optional.empty();
      }
    }).orElse(null);
  }
}
