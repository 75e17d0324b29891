package io.pipetrace.sink;

import io.pipetrace.config.Rules;
import io.pipetrace.config.Settings;
import io.pipetrace.health.Faults;
import io.pipetrace.health.Log;
import io.pipetrace.spool.Anchor;
import io.pipetrace.spool.Run;
import io.pipetrace.spool.RunRecord;
import io.pipetrace.spool.Spool;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.spark.SparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;

/**
 * Spark-side writer: commits a run's sealed spool segments into the table with Spark's own
 * writer (Delta by default), on one daemon thread, never on the listener bus.
 *
 * <p>Exactly once: with Delta, each batch carries the write options {@code txnAppId =
 * pipetrace/<run_id>} and {@code txnVersion = <last segment number of the batch>}, so Delta skips
 * a batch it already committed (a crash between commit and segment cleanup). Other formats
 * ignore those options, so for them the batch first drops rows whose event_id the table already
 * holds for the run. Segments are deleted only after their batch committed. A Delta commit
 * carries the run's {@link Anchor} as userMetadata, as delta-rs commits do.
 *
 * <p>Its own writes run in an internal session ({@link Internal}): never steps. A failing
 * write leaves the segments in the spool, logs one warning, counts the failure, and is retried
 * on the next tick; nothing is thrown into Spark. {@code pipetrace ingest} can still commit
 * the spool to a path with delta-rs.
 */
public final class SparkSink {
  private static final Map<String, SparkSink> SINKS = new ConcurrentHashMap<>();
  private static final int MAX_SEGMENTS_PER_BATCH = 64;
  private static final int STOP_RETRIES = 5;
  private static final String STATS_COLUMNS = "delta.dataSkippingStatsColumns";
  private static ScheduledExecutorService thread;

  private final Run run;             // null for a dead run's spool (recoverRun)
  private final String runId;
  private final Path dir;
  private final String keyId;
  private final String target;
  private final String format;
  private final boolean isName;
  private volatile java.lang.ref.WeakReference<SparkSession> base;
  private SparkSession internal;
  private StructType schema;
  private boolean tableReady;
  // Whether the table may already hold some of the sealed segments: a new sink taking over a
  // run's spool, or a commit that failed after Delta may have committed. Then each segment is
  // its own commit (txnVersion = its number), so Delta skips exactly the committed ones; one
  // batch would carry the highest number and commit them all again.
  private boolean uncertain = true;
  private final AtomicLong committedSteps = new AtomicLong();
  private final AtomicLong committedBatches = new AtomicLong();
  private final AtomicLong duplicatesSkipped = new AtomicLong();
  private final AtomicLong failures = new AtomicLong();
  private final AtomicLong quarantined = new AtomicLong();
  private volatile String lastError;
  private volatile boolean stopped;

  private SparkSink(Run run, String target, SparkSession session) {
    this(run, run.runId, run.dir(), run.keyId(), target, run.settings.format, session);
  }

  private SparkSink(Run run, String runId, Path dir, String keyId, String target,
      String format, SparkSession session) {
    this.run = run;
    this.runId = runId;
    this.dir = dir;
    this.keyId = keyId;
    this.target = target;
    this.format = format;
    this.isName = isTableName(target);
    this.base = new java.lang.ref.WeakReference<>(session);
  }

  /** The rule shared with python/pipetrace/locations.py: three dot-separated identifiers name a catalog table; anything else is a path. */
  static boolean isTableName(String target) {
    return Rules.isTableName(target);
  }

  /** True when Delta's Spark classes are on the driver (Databricks Runtime, or delta-spark). */
  static boolean deltaAvailable(SparkContext sc) {
    if (sc != null && sc.getConf().contains("spark.databricks.clusterUsageTags.clusterId")) {
      return true;
    }
    for (String cls : new String[] {"org.apache.spark.sql.delta.DeltaLog",
        "com.databricks.sql.transaction.tahoe.DeltaLog"}) {
      try {
        Class.forName(cls, false, Thread.currentThread().getContextClassLoader());
        return true;
      } catch (Throwable ignored) {
        // not this one
      }
    }
    return false;
  }

  /**
   * Which writer commits the run: {@code spark}, {@code delta-rs} (Python: attach's commit
   * thread, `pipetrace run`, `pipetrace ingest`) or {@code spool} (nobody; ingest later).
   * {@code auto}: a catalog name needs Spark; a remote path goes through Spark when it has
   * Delta (or the format is not Delta); a local path goes to delta-rs.
   */
  public static String choose(Settings settings, SparkContext sc) {
    String w = settings.writer;
    if ("spark".equals(w) || "delta-rs".equals(w) || "spool".equals(w)) {
      return w;
    }
    String table = settings.table;
    if (table == null) {
      return "delta-rs";
    }
    if (isTableName(table)) {
      return "spark";
    }
    boolean remote = Rules.isRemote(table);
    if (remote && (!"delta".equals(settings.format) || deltaAvailable(sc))) {
      return "spark";
    }
    return "delta-rs";
  }

  /** Start the writer thread of this run when Spark's writer is chosen; idempotent. */
  public static SparkSink maybeStart(Run run, SparkSession session) {
    try {
      if (run == null) {
        return null;
      }
      SparkContext sc = session != null ? session.sparkContext()
          : SparkContext.getOrCreate(new org.apache.spark.SparkConf());
      if (!"spark".equals(choose(run.settings, sc))) {
        return null;
      }
      String target = run.settings.table != null ? run.settings.table : "pipeline_steps";
      SparkSink sink = SINKS.computeIfAbsent(run.runId, id -> new SparkSink(run, target, session));
      if (session != null && sink.base.get() == null) {
        sink.base = new java.lang.ref.WeakReference<>(session);
      }
      startThread(run.settings.segmentMaxAgeMs);
      return sink;
    } catch (Throwable t) {
      Log.warnOnce("sink-start", "pipetrace: Spark's writer is off; steps stay in the spool", t);
      return null;
    }
  }

  /**
   * Commit the sealed segments of a run whose writer is gone (python/pipetrace/spark_writer.py
   * seals its open segments and holds its commit lock) into {@code target}; its counters.
   */
  public static Map<String, Object> recoverRun(SparkSession session, String runDir,
      String target, String format) throws IOException {
    Path dir = Path.of(runDir);
    Map<?, ?> manifest = new com.fasterxml.jackson.databind.ObjectMapper().readValue(
        dir.resolve("run.json").toFile(), Map.class);
    Object keyId = manifest.get("key_id");
    SparkSink sink = new SparkSink(null, dir.getFileName().toString(), dir,
        keyId == null ? null : keyId.toString(), target, format, session);
    sink.drain();
    return sink.stats();
  }

  public static SparkSink get(String runId) {
    return SINKS.get(runId);
  }

  /**
   * Commit what is left (the run is closed, its last segment sealed), retrying a failed commit
   * a few times with growing pauses (0.1 s to 1.6 s, within {@code timeoutMs}): a concurrent
   * writer or a passing storage error should not leave the run's last steps behind, and a
   * table that stays broken should not hold up detach(). Keeps the counters.
   */
  public static void stop(String runId, long timeoutMs) {
    SparkSink sink = SINKS.get(runId);
    if (sink == null) {
      return;
    }
    long deadline = System.currentTimeMillis() + Math.max(0, timeoutMs);
    long pause = 100;
    long failuresBefore = sink.failures.get();
    sink.drain();
    for (int retry = 0; retry < STOP_RETRIES && sink.failures.get() > failuresBefore
        && sink.hasSealedSegments() && System.currentTimeMillis() + pause < deadline; retry++) {
      try {
        Thread.sleep(pause);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
      pause = Math.min(pause * 2, 2_000);
      failuresBefore = sink.failures.get();
      sink.drain();
    }
    sink.stopped = true;
  }

  private boolean hasSealedSegments() {
    try {
      return !sealedSegments().isEmpty();
    } catch (IOException e) {
      return false;
    }
  }

  private static synchronized void startThread(long intervalMs) {
    if (thread != null) {
      return;
    }
    thread = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "pipetrace-spark-writer");
      t.setDaemon(true);
      return t;
    });
    long every = Math.max(200, intervalMs);
    thread.scheduleWithFixedDelay(() -> {
      for (SparkSink sink : SINKS.values()) {
        if (!sink.stopped) {
          sink.drain();
        }
      }
    }, every, every, TimeUnit.MILLISECONDS);
    // Before SparkContext stops (its hook has priority 50): seal and commit the last steps.
    org.apache.spark.util.ShutdownHookManager.addShutdownHook(60,
        new scala.runtime.AbstractFunction0<scala.runtime.BoxedUnit>() {
          @Override
          public scala.runtime.BoxedUnit apply() {
            try {
              for (SparkSink sink : SINKS.values()) {
                sink.run.seal();  // registered sinks always have their live run
                sink.drain();
                if (sink.lastError == null) {  // Spark can still write: the run's row too
                  sink.commitJvmOnlyRecord();
                }
              }
            } catch (Throwable t) {
              Log.warnOnce("sink-shutdown", "pipetrace: could not commit the last steps at "
                  + "shutdown; they stay in the spool", t);
            }
            return scala.runtime.BoxedUnit.UNIT;
          }
        });
  }

  /**
   * At the application's end, the row in pipeline_runs of a run no Python side records (an
   * init script's): ended now, while Spark can still write it. A run with a Python side is
   * committed by it (python/pipetrace/spark_writer.py) once that side wrote its end.
   */
  private void commitJvmOnlyRecord() {
    try {
      if (run == null || Files.exists(dir.resolve(RunRecord.PY_FILE)) || !run.record.end()) {
        return;
      }
      Path file = dir.resolve(RunRecord.FILE);
      RecordSink.commit(session(), target, format, RecordSink.jvmOnlyRow(file),
          run.record.version());
      Files.deleteIfExists(file);
    } catch (Throwable t) {
      Log.warnOnce("record-sink-" + runId, "pipetrace: cannot write run " + runId + "'s row in "
          + "pipeline_runs with Spark's writer; it stays in the spool " + dir + " for "
          + "pipetrace.spark_writer.recover_with_spark", t);
    }
  }

  /** Seal the open segment and commit everything sealed now; the counters after it. */
  public Map<String, Object> drainNow() {
    if (run != null) {
      run.seal();
    }
    drain();
    return stats();
  }

  public Map<String, Object> stats() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("writer", "spark");
    m.put("sink_target", target);
    m.put("sink_format", format);
    m.put("sink_committed_steps", committedSteps.get());
    m.put("sink_committed_batches", committedBatches.get());
    m.put("sink_duplicates_skipped", duplicatesSkipped.get());
    m.put("sink_failures", failures.get());
    m.put("sink_quarantined_segments", quarantined.get());
    m.put("sink_last_error", lastError);
    return m;
  }

  /** Commit every sealed segment in batches; never throws. Returns the steps committed. */
  synchronized long drain() {
    long total = 0;
    try {
      List<long[]> segments = sealedSegments();
      int per = uncertain && "delta".equals(format) ? 1 : MAX_SEGMENTS_PER_BATCH;
      for (int from = 0; from < segments.size(); from += per) {
        List<long[]> batch = segments.subList(from, Math.min(segments.size(), from + per));
        total += commit(batch);
      }
      uncertain = false;
      lastError = null;
    } catch (Throwable t) {
      uncertain = true;
      failures.incrementAndGet();
      if (t instanceof TableUnusable) {
        lastError = t.getMessage() + "; the steps stay in the spool " + dir + " and are "
            + "committed once it is fixed (flush() retries; after the run: "
            + "pipetrace.spark_writer.recover_with_spark(spark, table=...))";
        Log.warnOnce("sink-" + runId, "pipetrace: " + lastError);
      } else {
        lastError = t.getClass().getName() + ": " + t.getMessage();
        Log.warnOnce("sink-" + runId, "pipetrace: Spark's writer cannot commit run "
            + runId + " to " + target + " (" + lastError + "); steps stay in the spool "
            + dir + " and are retried. Check the table permissions (USE CATALOG, USE "
            + "SCHEMA, CREATE TABLE, MODIFY) or set spark.pipetrace.writer=spool.", t);
      }
    }
    return total;
  }

  private List<long[]> sealedSegments() throws IOException {
    List<long[]> found = new ArrayList<>();
    if (!Files.isDirectory(dir)) {
      return found;
    }
    try (var files = Files.list(dir)) {
      for (Path p : (Iterable<Path>) files::iterator) {
        long number = Rules.segmentNumber(p.getFileName().toString(), false);
        if (number >= 0) {
          found.add(new long[] {number});
        }
      }
    }
    found.sort((a, b) -> Long.compare(a[0], b[0]));
    return found;
  }

  private long commit(List<long[]> all) throws Exception {
    List<String> lines = new ArrayList<>();
    List<long[]> batch = new ArrayList<>();
    for (long[] seg : all) {
      Path path = dir.resolve(Spool.name(seg[0]));
      List<String> segLines = Files.readAllLines(path, StandardCharsets.UTF_8);
      String problem = SegmentCheck.problem(segLines, runId);
      if (problem != null) {
        SegmentCheck.quarantine(path, problem);
        quarantined.incrementAndGet();
        Log.warnOnce("sink-quarantine-" + runId, "pipetrace: moved spool segment " + path
            + " to quarantine/ (" + problem + "); the run's other steps are committed");
        continue;
      }
      batch.add(seg);
      for (String line : segLines) {
        if (!line.isBlank()) {
          lines.add(line);
        }
      }
    }
    if (batch.isEmpty()) {
      return 0;
    }
    long version = batch.get(batch.size() - 1)[0];
    SparkSession spark = session();
    ensureTable(spark);
    Dataset<Row> parsed = spark.read().schema(schema).option("mode", "FAILFAST")
        .json(spark.createDataset(lines, Encoders.STRING()));
    boolean delta = "delta".equals(format);
    Dataset<Row> rows = delta ? parsed : withoutCommitted(spark, parsed);
    long count = rows.count();
    var writer = rows.write().format(format).mode(SaveMode.Append)
        // a table created by an older pipetrace gains the columns added since (additive only)
        .option("mergeSchema", "true")
        .option("txnAppId", "pipetrace/" + runId)
        .option("txnVersion", Long.toString(version));
    com.fasterxml.jackson.databind.JsonNode last = lines.isEmpty() ? null
        : new com.fasterxml.jackson.databind.ObjectMapper().readTree(lines.get(lines.size() - 1));
    if (delta && last != null && last.path("row_hash").isTextual()) {
      // The anchor of the run's last step in this batch (steps are spooled in seq order).
      writer = writer.option("userMetadata", Anchor.userMetadata(runId,
          last.path("seq").asLong(), last.path("row_hash").asText(), keyId));
    }
    if (count > 0 || delta) {
      Faults.maybePauseSink("before-commit");
      if (isName) {
        writer.saveAsTable(target);
      } else {
        writer.save(target);
      }
      Faults.maybePauseSink("after-commit");
    }
    if (!delta && count > 0) {
      // Without a transaction log, a concurrent writer's cleanup of Hadoop's shared _temporary
      // directory can take files of this job while it still reports success. Check before
      // the spool lets go of the steps; the next attempt writes only what is missing.
      long missing = withoutCommitted(spark, parsed).count();
      if (missing > 0) {
        throw new IOException(missing + " of " + lines.size() + " steps are not in " + target
            + " after a successful write (a concurrent writer?); they stay in the spool and "
            + "are written again");
      }
    }
    for (long[] seg : batch) {
      Files.deleteIfExists(dir.resolve(Spool.name(seg[0])));
    }
    committedBatches.incrementAndGet();
    committedSteps.addAndGet(count);
    duplicatesSkipped.addAndGet(lines.size() - count);
    return count;
  }

  /** Non-Delta formats ignore txn ids: drop steps whose event_id the table already has. */
  private Dataset<Row> withoutCommitted(SparkSession spark, Dataset<Row> rows) {
    Dataset<Row> existing;
    if (isName) {
      existing = spark.table(target);
    } else {
      Path local = localPath(target);
      if (local != null && !Files.exists(local)) {
        return rows;
      }
      existing = spark.read().format(format).schema(schema).load(target);
    }
    Dataset<Row> ids = existing.where(functions.col("run_id").equalTo(runId))
        .select("event_id");
    return rows.join(ids, rows.col("event_id").equalTo(ids.col("event_id")), "left_anti");
  }

  private static Path localPath(String target) {
    if (target.startsWith("file:")) {
      return Path.of(java.net.URI.create(target));
    }
    return Rules.isRemote(target) ? null : Path.of(target);
  }

  private SparkSession session() {
    if (internal != null) {
      return internal;
    }
    SparkSession parent = base.get();
    if (parent == null) {
      parent = SparkSession.getDefaultSession().isDefined()
          ? SparkSession.getDefaultSession().get() : null;
    }
    if (parent == null) {
      throw new IllegalStateException("no Spark session yet");
    }
    internal = Internal.newSession(parent);
    return internal;
  }

  /** Create the table on first use from the shared schema, with comments and properties. */
  private void ensureTable(SparkSession spark) throws Exception {
    if (tableReady) {
      return;
    }
    schema = (StructType) DataType.fromJson(resource("/pipetrace/schema.json"));
    Map<String, Object> table = new com.fasterxml.jackson.databind.ObjectMapper().readValue(
        resource("/pipetrace/table.json"), Map.class);
    boolean delta = "delta".equals(format);
    String name = isName ? target : delta ? "delta.`" + target.replace("`", "``") + "`" : null;
    if (isName) {
      checkSchema(spark);
    }
    if (name != null && !(isName && spark.catalog().tableExists(target))) {
      StringBuilder props = new StringBuilder();
      Object p = table.get("properties");
      if (p instanceof Map) {
        for (Map.Entry<?, ?> e : ((Map<?, ?>) p).entrySet()) {
          String key = e.getKey().toString();
          String value = STATS_COLUMNS.equals(key) && delta
              ? statsColumns(e.getValue().toString(), schema) : e.getValue().toString();
          props.append(props.length() == 0 ? "" : ", ").append(quote(key))
              .append(" = ").append(quote(value));
        }
      }
      // Delta keeps NOT NULL; file-source tables reject it, so they get a nullable schema.
      StructType columns = delta ? (StructType) withoutNestedNotNull(schema) : schema.asNullable();
      spark.sql("CREATE TABLE IF NOT EXISTS " + name + " (" + columns.toDDL() + ") USING "
          + format + " COMMENT " + quote(String.valueOf(table.get("description")))
          + (props.length() > 0 ? " TBLPROPERTIES (" + props + ")" : ""));
    }
    tableReady = true;
  }

  /**
   * The shared list of statistics columns without those Spark's Delta keeps no statistics for:
   * Delta refuses to create a table naming one (DELTA_COLUMN_DATA_SKIPPING_NOT_SUPPORTED_TYPE,
   * e.g. the boolean plan_truncated), where delta-rs accepts and ignores it. Types Delta skips
   * on: numbers, strings, dates, timestamps, decimals, and structs of those.
   */
  static String statsColumns(String listed, StructType schema) {
    List<String> kept = new ArrayList<>();
    for (String column : listed.split(",")) {
      String name = column.trim();
      if (name.isEmpty()) {
        continue;
      }
      var field = java.util.Arrays.stream(schema.fields())
          .filter(f -> f.name().equals(name)).findFirst();
      if (field.isEmpty() || skippable(field.get().dataType())) {
        kept.add(name);  // a column the schema does not have: Delta says what is wrong
      }
    }
    return String.join(",", kept);
  }

  private static boolean skippable(DataType type) {
    return type instanceof org.apache.spark.sql.types.NumericType
        || type instanceof org.apache.spark.sql.types.StringType
        || type instanceof org.apache.spark.sql.types.DateType
        || type instanceof org.apache.spark.sql.types.TimestampType
        || type instanceof org.apache.spark.sql.types.TimestampNTZType
        || type instanceof StructType;
  }

  /**
   * The type with every NOT NULL inside an array or map dropped: Delta enforces NOT NULL on
   * columns and struct fields only and refuses a table that declares one within an array or
   * map element (DELTA_NESTED_NOT_NULL_CONSTRAINT), e.g. the fields of each operator.
   */
  static DataType withoutNestedNotNull(DataType type) {
    if (type instanceof StructType) {
      StructType struct = (StructType) type;
      org.apache.spark.sql.types.StructField[] fields = struct.fields().clone();
      for (int i = 0; i < fields.length; i++) {
        fields[i] = new org.apache.spark.sql.types.StructField(fields[i].name(),
            withoutNestedNotNull(fields[i].dataType()), fields[i].nullable(), fields[i].metadata());
      }
      return new StructType(fields);
    }
    if (type instanceof org.apache.spark.sql.types.ArrayType
        || type instanceof org.apache.spark.sql.types.MapType) {
      return type.asNullable();
    }
    return type;
  }

  /** A table the writer cannot use until someone acts; the message says what to do. */
  static final class TableUnusable extends IOException {
    TableUnusable(String message) {
      super(message);
    }
  }

  /** A missing catalog or schema, said plainly instead of as Spark's AnalysisException. */
  private void checkSchema(SparkSession spark) throws Exception {
    scala.collection.Seq<String> parts =
        spark.sessionState().sqlParser().parseMultipartIdentifier(target);
    String catalog = parts.apply(0);
    String schemaName = quoteId(catalog) + "." + quoteId(parts.apply(1));
    try {
      // Resolving the catalog itself: databaseExists("nosuch.audit") only answers false.
      // By reflection: CatalogManager is a class in some Spark 4 releases, an interface in others.
      Object manager = spark.sessionState().getClass().getMethod("catalogManager")
          .invoke(spark.sessionState());
      manager.getClass().getMethod("catalog", String.class).invoke(manager, catalog);
    } catch (java.lang.reflect.InvocationTargetException wrapped) {
      Throwable e = wrapped.getCause();
      if (e.getClass().getSimpleName().equals("CatalogNotFoundException")
          || String.valueOf(e.getMessage()).contains("CATALOG_NOT_FOUND")) {
        throw new TableUnusable("cannot write " + target + ": this Spark session has no "
            + "catalog " + quoteId(catalog) + " (spark.sql.catalog." + catalog + " is not set). "
            + "Name a table in a catalog the session has (e.g. spark_catalog.default."
            + parts.apply(2) + ") or configure the catalog");
      }
      throw wrapped;
    }
    if (!spark.catalog().databaseExists(schemaName)) {
      throw new TableUnusable("cannot write " + target + ": schema " + schemaName + " does "
          + "not exist. Create it (CREATE SCHEMA " + schemaName + ") or name a table in an "
          + "existing schema");
    }
  }

  private static String quoteId(String part) {
    return "`" + part.replace("`", "``") + "`";
  }

  static String quote(String s) {
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'";
  }

  static String resource(String name) throws IOException {
    try (InputStream in = SparkSink.class.getResourceAsStream(name)) {
      if (in == null) {
        throw new IOException(name + " is missing from the pipetrace jar; rebuild it");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }
}
