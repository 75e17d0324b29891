package io.pipetrace.capture;

import io.pipetrace.health.Log;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * What a Delta write committed: the table version(s) this action added to the Delta log, and the
 * operation and operationMetrics Delta recorded in that commit's {@code commitInfo}.
 *
 * <p>Read from the table's {@code _delta_log} with Hadoop's FileSystem on pipetrace's writer
 * thread, after the action ended: a directory probe or listing and the first lines of one or two
 * commit files. Never Delta's API (loading a snapshot runs Spark jobs) and never on Spark's
 * listener thread. A commit is this action's when it lies on the action's table and inside the
 * action's own time window on this driver's clock (from its SQL execution's start to its
 * capture); when other writers committed to the table inside that window too, pipetrace cannot
 * tell which commit is its action's and records none, with the reason.
 */
public final class DeltaCommits {
  private static final ObjectMapper JSON = new ObjectMapper();
  // How far back from the newest commit a resolution looks before giving up.
  private static final int MAX_SCAN = 200;
  // The first bytes of a commit file that are read to find its commitInfo (Delta writes it first).
  private static final int MAX_HEAD = 1 << 20;

  private DeltaCommits() {}

  /** Delta operations that write a query's rows (their numOutputRows is the rows written). */
  private static final java.util.Set<String> WRITES = java.util.Set.of("WRITE",
      "CREATE TABLE AS SELECT", "REPLACE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT",
      "STREAMING UPDATE");

  /** Key of the pending resolution in a captured row's output (removed before it is written). */
  public static final String PENDING = "__delta_commit";

  /** Where a path comes from when the plan does not hold it (a catalog lookup), or why not. */
  interface Locator {
    Path locate() throws Exception;
  }

  /** The target of a Delta write, as the listener saw it; resolved later by {@link #resolve}. */
  public static final class Pending {
    final Locator table;        // the table's data path (its _delta_log is below it)
    final Long knownVersion;    // the newest version this driver's DeltaLog knew at capture
    final Configuration conf;
    final long startMs;
    final long endMs;
    final boolean command;      // DML or maintenance: rows_out stays null

    Pending(Locator table, Long knownVersion, Configuration conf, long startMs, long endMs,
        boolean command) {
      this.table = table;
      this.knownVersion = knownVersion;
      this.conf = conf;
      this.startMs = startMs;
      this.endMs = endMs;
      this.command = command;
    }
  }

  /**
   * Complete a captured row whose output is a Delta write: its version, operation and metrics,
   * or a capture warning with the reason they are unknown. Runs on pipetrace's writer thread.
   */
  @SuppressWarnings("unchecked")
  public static void complete(Map<String, Object> row) {
    Object out = row.get("output");
    if (!(out instanceof Map)) {
      return;
    }
    Object p = ((Map<String, Object>) out).remove(PENDING);
    if (!(p instanceof Pending)) {
      return;
    }
    Result r = resolve((Pending) p);
    Map<String, Object> o = (Map<String, Object>) out;
    o.put("version", r.version);
    o.put("operation", r.operation);
    o.put("metrics", r.metrics);
    Long written = r.metrics == null ? null : r.metrics.get("numOutputRows");
    if (!((Pending) p).command && written != null && WRITES.contains(r.operation)) {
      // The rows the write committed, as Delta counted them: the table's own record.
      row.put("rows_out", written);
    }
    if (r.unknown != null) {
      Object w = row.get("capture_warnings");
      List<Object> warnings = w instanceof List ? new ArrayList<>((List<Object>) w)
          : new ArrayList<>();
      warnings.add("output version unknown: " + r.unknown);
      row.put("capture_warnings", warnings);
    }
  }

  /** One commit of the Delta log: its version and commitInfo. */
  record Commit(long version, JsonNode info) {
    long timestamp() {
      return info.path("timestamp").asLong(Long.MIN_VALUE);
    }

    String operation() {
      return info.path("operation").asText(null);
    }
  }

  /** Version, operation and metrics of the action's commit(s), or the reason they are unknown. */
  public static final class Result {
    public Long version;
    public String operation;
    public Map<String, Long> metrics;
    public String unknown;
  }

  static boolean isDelta(Object o) {
    if (o == null) {
      return false;
    }
    String n = o.getClass().getName();
    return n.startsWith("org.apache.spark.sql.delta.") || n.startsWith("io.delta.")
        || n.startsWith("com.databricks.sql.transaction.tahoe.");
  }

  /**
   * The DeltaLog behind {@code o} (a DeltaLog, a Delta file index, DeltaTableV2, a Delta
   * command, a ResolvedTable over a Delta table), found through the accessors Delta has had
   * since 2.x; null when there is none.
   */
  static Object deltaLog(Object o, int depth) {
    if (o == null || depth > 3) {
      return null;
    }
    String simple = o.getClass().getSimpleName();
    if (isDelta(o) && simple.equals("DeltaLog")) {
      return o;
    }
    for (String accessor : new String[] {"deltaLog", "tahoeFileIndex", "targetFileIndex",
        "fileIndex", "sourceTable", "table", "location", "relation"}) {
      Object next = call(o, accessor);
      if (next != null && next != o) {
        Object found = deltaLog(next, depth + 1);
        if (found != null) {
          return found;
        }
      }
    }
    return null;
  }

  /** The table's data path of a DeltaLog, or null. */
  static Path dataPath(Object deltaLog) {
    Object p = call(deltaLog, "dataPath");
    return p instanceof Path ? (Path) p : null;
  }

  /**
   * The newest version this driver's DeltaLog holds in memory (no I/O: the snapshot a commit of
   * this driver installs), or null.
   */
  static Long knownVersion(Object deltaLog) {
    Object snapshot = call(deltaLog, "unsafeVolatileSnapshot");
    Object v = snapshot == null ? null : call(snapshot, "version");
    return v instanceof Number && ((Number) v).longValue() >= 0 ? ((Number) v).longValue() : null;
  }

  static Object call(Object o, String method) {
    try {
      Method m = o.getClass().getMethod(method);
      m.setAccessible(true);
      return m.invoke(o);
    } catch (Throwable t) {
      return null;
    }
  }

  /** Find the action's commit(s) in the table's Delta log. Never throws. */
  public static Result resolve(Pending p) {
    Result r = new Result();
    Path table = null;
    try {
      table = p.table.locate();
      if (table == null) {
        r.unknown = "the Delta table's location is not known";
        return r;
      }
      Path log = new Path(table, "_delta_log");
      FileSystem fs = log.getFileSystem(p.conf);
      long newest = newest(fs, log, p.knownVersion);
      if (newest < 0) {
        r.unknown = "no commit found in " + log;
        return r;
      }
      List<Commit> mine = new ArrayList<>();
      for (long v = newest, seen = 0; v >= 0 && seen < MAX_SCAN; v--, seen++) {
        Commit c = read(fs, log, v);
        if (c == null) {
          break;  // cleaned up by log retention: older commits are older than the action too
        }
        long ts = c.timestamp();
        if (ts < p.startMs) {
          break;
        }
        if (ts <= p.endMs) {
          mine.add(0, c);
        }
      }
      return choose(mine, r);
    } catch (Throwable t) {
      r.unknown = (table == null ? "the Delta table's location could not be looked up: "
          : "the Delta log of " + table + " could not be read: ") + t;
      Log.warnOnce("delta-commit", "pipetrace: could not read a Delta log", t);
      return r;
    }
  }

  private static Result choose(List<Commit> mine, Result r) {
    if (mine.isEmpty()) {
      r.unknown = "Delta recorded no commit for this action (nothing to change?)";
      return r;
    }
    boolean vacuum = mine.size() == 2 && "VACUUM START".equals(mine.get(0).operation())
        && "VACUUM END".equals(mine.get(1).operation())
        && mine.get(1).version() == mine.get(0).version() + 1;
    if (mine.size() > 1 && !vacuum) {
      List<Long> versions = new ArrayList<>();
      for (Commit c : mine) {
        versions.add(c.version());
      }
      r.unknown = mine.size() + " commits " + versions + " fell in this action's time window"
          + " (other writers on the table): which one is this action's cannot be told";
      return r;
    }
    Commit last = mine.get(mine.size() - 1);
    r.version = last.version();
    r.operation = vacuum ? "VACUUM" : last.operation();
    r.metrics = new LinkedHashMap<>();
    for (Commit c : mine) {
      java.util.Iterator<Map.Entry<String, JsonNode>> it =
          c.info().path("operationMetrics").fields();
      while (it.hasNext()) {
        Map.Entry<String, JsonNode> e = it.next();
        try {
          r.metrics.put(e.getKey(), Long.parseLong(e.getValue().asText()));
        } catch (NumberFormatException ignored) {
          // Delta's metrics are counts, sizes and times; anything else is not recorded
        }
      }
    }
    return r;
  }

  /** The newest version in the log: probe forward from a known one, else list the folder. */
  private static long newest(FileSystem fs, Path log, Long known) throws java.io.IOException {
    if (known != null && fs.exists(commitFile(log, known))) {
      long v = known;
      while (fs.exists(commitFile(log, v + 1))) {
        v++;
      }
      return v;
    }
    long max = -1;
    for (FileStatus s : fs.listStatus(log)) {
      String name = s.getPath().getName();
      if (name.length() == 25 && name.endsWith(".json")) {
        try {
          max = Math.max(max, Long.parseLong(name.substring(0, 20)));
        } catch (NumberFormatException ignored) {
          // not a commit file
        }
      }
    }
    return max;
  }

  private static Path commitFile(Path log, long version) {
    return new Path(log, String.format(java.util.Locale.ROOT, "%020d.json", version));
  }

  private static Commit read(FileSystem fs, Path log, long version) throws java.io.IOException {
    Path file = commitFile(log, version);
    if (!fs.exists(file)) {
      return null;
    }
    try (BufferedReader in = new BufferedReader(new InputStreamReader(fs.open(file),
        StandardCharsets.UTF_8))) {
      long read = 0;
      for (String line = in.readLine(); line != null && read < MAX_HEAD; line = in.readLine()) {
        read += line.length();
        if (line.startsWith("{\"commitInfo\"")) {
          return new Commit(version, JSON.readTree(line).path("commitInfo"));
        }
      }
    }
    // A commit without commitInfo (another engine): its time is unknown, so it bounds the scan.
    return new Commit(version, JSON.createObjectNode());
  }
}
