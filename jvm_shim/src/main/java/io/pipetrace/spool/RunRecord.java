package io.pipetrace.spool;

import io.pipetrace.config.Version;
import io.pipetrace.health.Log;
import io.pipetrace.redact.Redactor;
import io.pipetrace.redact.Redactors;

import java.lang.ref.WeakReference;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.internal.SQLConf;

/**
 * The JVM's part of a run's row in pipeline_runs, kept in the run's spool directory as
 * {@code record.json} (python/pipetrace/run_record.py reads it): written when the run opens
 * (its start) and again when it closes (its end, step counts, the session's result-changing
 * settings). What the Python side knows (argv, the script, notebook cells) it leaves raw in
 * {@code record.py.json}; this class redacts it with the session's redactor into
 * {@code record.json}, so only redacted text is ever committed. Written on open and close only,
 * never on Spark's listener thread per step; failures are logged once and never thrown.
 */
public final class RunRecord {
  public static final String FILE = "record.json";
  public static final String PY_FILE = "record.py.json";
  /** Settings recorded with their effective value even when nobody set them. */
  static final String[] KEY_SETTINGS = {"spark.sql.ansi.enabled", "spark.sql.session.timeZone",
      "spark.sql.shuffle.partitions", "spark.sql.adaptive.enabled"};
  static final int MAX_TEXT = 1_000_000;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Run run;
  final AtomicLong failedSteps = new AtomicLong();
  private volatile String mode;
  private volatile Instant startedAt;
  private volatile long version;          // the Delta txn version of the row: its start in ms
  private long stepsBefore;               // of earlier sessions of the same record (resume)
  private long failedBefore;
  private volatile WeakReference<SQLConf> conf = new WeakReference<>(null);
  private volatile WeakReference<SparkContext> context = new WeakReference<>(null);
  private volatile Map<String, String> stepContext;  // the first step's Databricks context
  private boolean ended;                  // its end is written; later closes keep it

  RunRecord(Run run) {
    this.run = run;
  }

  /**
   * The session the run records: the first call wins (a run shared by several sessions keeps
   * the first). {@code mode} is conf (listener set by configuration) or attach; for conf the
   * session started with the Spark application.
   */
  public synchronized void session(String how, SparkContext sc, SQLConf sessionConf) {
    if (mode != null) {
      return;
    }
    mode = how;
    context = new WeakReference<>(sc);
    conf = new WeakReference<>(sessionConf);
    startedAt = "conf".equals(how) && sc != null ? Instant.ofEpochMilli(sc.startTime())
        : Instant.now();
    version = startedAt.toEpochMilli();
    continueEarlier();
    write(false);
  }

  /** The Databricks context of the run's first step that has one (see StepCapture). */
  void noteStep(Map<String, Object> row) {
    if ("FAILED".equals(row.get("status"))) {
      failedSteps.incrementAndGet();
    }
    if (stepContext == null && row.get("context") instanceof Map) {
      @SuppressWarnings("unchecked")
      Map<String, String> found = (Map<String, String>) row.get("context");
      stepContext = found;
    }
  }

  /** The run closes: its end, counts and settings; then the redacted Python facts. */
  void close() {
    end();
  }

  /**
   * Write the record's end now, once (Spark's writer commits a JVM-only run's row before the
   * run closes, while Spark can still write); false when the run recorded no session.
   */
  public synchronized boolean end() {
    if (mode == null) {
      return false;
    }
    if (!ended) {
      write(true);
      ended = true;
    }
    return true;
  }

  /** The Delta txn version of the record's row: its start in ms. */
  public long version() {
    return version;
  }

  /** A run id continued in a new session before its record was committed: one record. */
  private void continueEarlier() {
    try {
      Path file = run.dir().resolve(FILE);
      if (!Files.exists(file)) {
        return;
      }
      JsonNode old = JSON.readTree(file.toFile());
      if (old.path("started_at").isTextual() && old.path("record_version").canConvertToLong()) {
        startedAt = Instant.parse(old.get("started_at").asText());
        version = old.get("record_version").asLong();
        stepsBefore = old.path("steps").asLong(0);
        failedBefore = old.path("failed_steps").asLong(0);
      }
    } catch (Throwable t) {
      Log.warnOnce("record-read-" + run.runId, "pipetrace: cannot read run " + run.runId
          + "'s earlier record; it is written again", t);
    }
  }

  private synchronized void write(boolean ended) {
    try {
      Map<String, Object> row = new LinkedHashMap<>();
      List<String> warnings = new ArrayList<>();
      row.put("record_version", version);
      row.put("schema_version", Version.SCHEMA);
      row.put("run_id", run.runId);
      row.put("mode", mode);
      row.put("started_at", startedAt.toString());
      row.put("ended_at", ended ? Instant.now().toString() : null);
      SparkContext sc = context.get();
      if (sc != null) {
        row.put("app_id", sc.applicationId());
        row.put("app_name", sc.appName());
        row.put("spark_version", sc.version());
        row.put("user", sc.sparkUser());
      }
      row.put("host", host());
      row.put("pid", ProcessHandle.current().pid());
      row.put("java_version", System.getProperty("java.version"));
      row.put("pipetrace_version", Version.PIPETRACE);
      row.put("tags", run.settings.tags.isEmpty() ? null : run.settings.tags);
      row.put("context", stepContext);
      if (ended) {
        row.put("steps", stepsBefore + run.captured.get());
        row.put("failed_steps", failedBefore + failedSteps.get());
      }
      SQLConf sessionConf = conf.get();
      Redactor redactor = sessionConf != null && sc != null ? Redactors.of(sessionConf, sc) : null;
      if (sessionConf != null && sc != null) {
        row.put("spark_conf", settings(sessionConf, sc, redactor));
      } else {
        warnings.add("spark_conf: the run's session was gone when its record was written");
      }
      RecordText.addPythonFacts(row, run.dir().resolve(PY_FILE), redactor, warnings);
      row.put("capture_warnings", warnings.isEmpty() ? null : warnings);
      Path tmp = run.dir().resolve(FILE + ".tmp");
      Files.write(tmp, JSON.writeValueAsBytes(row));
      Files.move(tmp, run.dir().resolve(FILE), StandardCopyOption.ATOMIC_MOVE,
          StandardCopyOption.REPLACE_EXISTING);
    } catch (Throwable t) {
      Log.warnOnce("record-" + run.runId, "pipetrace: cannot write run " + run.runId
          + "'s record in " + run.dir() + "; its pipeline_runs row may lack the JVM's facts", t);
    }
  }

  /**
   * The key settings' effective values and every spark.sql.* set explicitly, redacted: a
   * sensitive name (spark.redaction.regex, or one that surely names a secret) masks its value.
   */
  static Map<String, String> settings(SQLConf conf, SparkContext sc, Redactor redactor) {
    Map<String, String> out = new TreeMap<>();
    for (String key : KEY_SETTINGS) {
      try {
        out.put(key, conf.getConfString(key));  // set, else the setting's default
      } catch (java.util.NoSuchElementException unknown) {
        out.put(key, null);
      }
    }
    scala.collection.Iterator<scala.Tuple2<String, String>> set = conf.getAllConfs().iterator();
    while (set.hasNext()) {
      scala.Tuple2<String, String> kv = set.next();
      if (kv._1().startsWith("spark.sql.")) {
        out.put(kv._1(), kv._2());
      }
    }
    Map<String, String> redacted = new TreeMap<>();
    for (Map.Entry<String, String> e : out.entrySet()) {
      String value = Redactors.sensitiveKey(e.getKey(), sc) && e.getValue() != null
          ? Redactor.MASK_TEXT : redactor.redact(e.getValue());
      redacted.put(redactor.redact(e.getKey()), value);
    }
    return redacted;
  }

  static String sha256(byte[] bytes) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
  }

  static String sha256(String text) throws Exception {
    return sha256(text.getBytes(StandardCharsets.UTF_8));
  }

  private static String host() {
    try {
      return java.net.InetAddress.getLocalHost().getHostName();
    } catch (Exception e) {
      return null;
    }
  }
}
