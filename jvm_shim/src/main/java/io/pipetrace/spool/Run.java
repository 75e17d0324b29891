package io.pipetrace.spool;

import io.pipetrace.config.Settings;
import io.pipetrace.health.Log;
import io.pipetrace.health.Timings;
import io.pipetrace.redact.Redactor;

import java.io.IOException;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * One run: the steps of one attach(), one `pipetrace run`, or one Spark session configured by
 * spark.sql.queryExecutionListeners. Every listener instance of the same run id in this JVM
 * shares it, so seq stays 1, 2, 3... across sessions of the run.
 */
public final class Run {
  private static final Map<String, Run> RUNS = new ConcurrentHashMap<>();
  // Last seq and row_hash of every run this JVM appended to, kept after the run closes: a new
  // SparkSession in the same process (spark.stop() then getOrCreate) continues the run's
  // numbering and chain instead of starting again at seq 1.
  private static final Map<String, Object[]> LAST = new ConcurrentHashMap<>();
  // Timestamps stay Instants until here, so the row hash needs no parsing; JSON gets ISO-8601.
  private static final ObjectMapper JSON = new ObjectMapper().registerModule(
      new com.fasterxml.jackson.databind.module.SimpleModule().addSerializer(
          java.time.Instant.class, com.fasterxml.jackson.databind.ser.std.ToStringSerializer.instance));
  private static final DateTimeFormatter ID_TIME = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss");
  private static ScheduledExecutorService sealer;
  private static final int SHUTDOWN_PRIORITY = 40;

  public final String runId;
  public final Settings settings;
  final Spool spool;
  final AtomicLong seq = new AtomicLong();
  public final AtomicLong captured = new AtomicLong();
  public final AtomicLong dropped = new AtomicLong();
  public final AtomicLong skipped = new AtomicLong();
  public final Timings timings = new Timings();   // listener time per callback of this run
  final HmacKey key;                       // null: row hashes are plain SHA-256
  public final Timings writeTimings = new Timings();   // StepWriter's time per step of this run
  /** The run's own row in pipeline_runs (record.json in its spool directory). */
  public final RunRecord record = new RunRecord(this);
  private long pending;     // steps handed to StepWriter and not written yet (guarded by pendingLock)
  private final Object pendingLock = new Object();
  private static final long CLOSE_WAIT_MS = 30_000;
  private volatile boolean closed;
  public volatile String dropReason;              // why the last step was dropped, for status()
  private String prevHash;  // row_hash of the last step appended (guarded by this)
  private long lastSeq;     // its seq (guarded by this)

  private Run(String runId, Settings settings, String appId) throws IOException {
    this.runId = runId;
    this.settings = settings;
    this.key = HmacKey.resolve(settings);
    this.spool = new Spool(settings.spool, runId, settings.table, appId, keyId(),
        settings.segmentMaxSteps, settings.segmentMaxAgeMs);
    Object[] last = LAST.get(runId);
    if (last != null && (Long) last[0] >= settings.resumeSeq) {
      seq.set((Long) last[0]);
      prevHash = (String) last[1];
    } else if (settings.resumeSeq > 0) {
      seq.set(settings.resumeSeq);
      prevHash = settings.resumeHash;
    }
    lastSeq = seq.get();
  }

  /** The run with this id (settings.runId, or a new id), created on first use. */
  public static Run open(Settings settings, String appId) throws IOException {
    String id = settings.runId != null ? settings.runId : newRunId();
    synchronized (RUNS) {
      Run run = RUNS.get(id);
      if (run == null || run.closed) {
        run = new Run(id, settings, appId);
        RUNS.put(id, run);
        startSealer();
      }
      return run;
    }
  }

  public static Run get(String runId) {
    return RUNS.get(runId);
  }

  /** Same shape as the Python side: 20261125-033512-a1b2c3 (UTC), sortable by start time. */
  public static String newRunId() {
    return LocalDateTime.now(ZoneOffset.UTC).format(ID_TIME) + "-"
        + String.format("%06x", ThreadLocalRandom.current().nextInt(1 << 24));
  }

  public Path dir() {
    return spool.dir();
  }

  public boolean isClosed() {
    return closed;
  }

  /** Id of the run's row-hash key (see HmacKey), or null when its rows are hashed unkeyed. */
  public String keyId() {
    return key != null ? key.id : null;
  }

  /**
   * The run's anchor as of its last appended step (Delta commit userMetadata, see Anchor), or
   * null before its first step: a user may keep it outside the table too.
   */
  public synchronized String anchor() throws Exception {
    return prevHash == null ? null : Anchor.userMetadata(runId, lastSeq, prevHash, keyId());
  }

  /** Hand a captured row to {@link StepWriter}; it redacts it and calls appendStep. */
  public void submit(Map<String, Object> row, Redactor redactor) {
    StepWriter.submit(this, row, redactor);
  }

  void submitted() {
    synchronized (pendingLock) {
      pending++;
    }
  }

  void written() {
    synchronized (pendingLock) {
      pending--;
      pendingLock.notifyAll();
    }
  }

  /** Wait until every step handed to StepWriter is in the spool; false on timeout. */
  public boolean awaitWritten(long timeoutMs) throws InterruptedException {
    long deadline = System.currentTimeMillis() + Math.max(0, timeoutMs);
    synchronized (pendingLock) {
      while (pending > 0) {
        long left = deadline - System.currentTimeMillis();
        if (left <= 0) {
          return false;
        }
        pendingLock.wait(left);
      }
    }
    return true;
  }

  /**
   * Number the step, chain it to the previous one (prev_hash, row_hash: tamper evidence that
   * `pipetrace verify` checks) and append it to the spool, all in one order. A failing spool
   * counts a drop and never throws.
   */
  synchronized void appendStep(Map<String, Object> row) {
    long number = seq.get() + 1;
    try {
      row.put("seq", number);
      row.put("prev_hash", prevHash);
      String hash = Canonical.rowHash(row, key);
      row.put("row_hash", hash);
      spool.append(JSON.writeValueAsBytes(row));
      record.noteStep(row);
      seq.set(number);
      prevHash = hash;
      LAST.put(runId, new Object[] {number, hash});
      lastSeq = number;
      captured.incrementAndGet();
    } catch (Throwable t) {
      // The number is not used: the run's seq stays gapless; the drop is counted and reported
      // (status, flush, detach, the run summary).
      dropped.incrementAndGet();
      dropReason = "cannot write to the spool " + dir() + ": " + t;
      Log.warnOnce("spool-append-" + runId, "pipetrace: cannot write to the spool " + dir()
          + " (" + t + "); steps of run " + runId + " are being dropped. Check that the "
          + "directory is writable or set spark.pipetrace.spool.");
    }
  }

  public void seal() {
    try {
      spool.seal();
    } catch (Throwable t) {
      Log.warnOnce("spool-seal-" + runId, "pipetrace: cannot seal a spool segment in " + dir(), t);
    }
  }

  /** Seal the last segment and release the spool; the run can't append afterwards. */
  public void close() {
    synchronized (RUNS) {
      if (closed) {
        return;
      }
      closed = true;
      RUNS.remove(runId, this);
    }
    try {
      // Steps already captured are written first (bounded: the app may be going down).
      if (!awaitWritten(CLOSE_WAIT_MS)) {
        Log.warnOnce("close-wait-" + runId, "pipetrace: run " + runId + " closed with steps"
            + " still being written; they are counted as dropped");
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    record.close();  // before the writer lock is released: committers wait for that
    // The run's own account, for `pipetrace run`, whose driver is gone when it reads it:
    // written after the last seal and before the writer lock is released (the runner waits
    // for the lock). If the spool cannot take even this, the runner says capture is
    // unconfirmed.
    try {
      spool.seal();
      Map<String, Object> account = new java.util.LinkedHashMap<>();
      account.put("captured", captured.get());
      account.put("dropped", dropped.get());
      account.put("drop_reason", dropReason);
      java.nio.file.Files.write(dir().resolve(CLOSED), JSON.writeValueAsBytes(account));
    } catch (Throwable t) {
      Log.warnOnce("spool-closed-" + runId, "pipetrace: cannot record run " + runId
          + "'s capture counters in " + dir(), t);
    }
    try {
      spool.close();
    } catch (Throwable t) {
      Log.warnOnce("spool-close-" + runId, "pipetrace: cannot close the spool " + dir(), t);
    }
  }

  /** The file a closed run leaves in its spool directory (read by python/pipetrace/runner.py). */
  static final String CLOSED = "closed.json";

  public static void closeAll() {
    for (Run run : RUNS.values()) {
      run.close();
    }
  }

  private static void startSealer() {
    if (sealer != null) {
      return;
    }
    sealer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "pipetrace-spool-sealer");
      t.setDaemon(true);
      return t;
    });
    // Age-based sealing bounds how long a step waits before a committer can take it.
    sealer.scheduleWithFixedDelay(() -> {
      long now = System.currentTimeMillis();
      for (Run run : RUNS.values()) {
        try {
          run.spool.sealIfOld(now);
        } catch (Throwable t) {
          Log.warnOnce("spool-seal-" + run.runId, "pipetrace: cannot seal a spool segment", t);
        }
      }
    }, 100, 100, TimeUnit.MILLISECONDS);
    // After SparkContext's own hook (priority 50), which drains the listener bus: closing the
    // runs earlier, in a plain JVM hook racing Spark's, lost the steps of the last actions of
    // a script that exits without spark.stop().
    org.apache.spark.util.ShutdownHookManager.addShutdownHook(SHUTDOWN_PRIORITY,
        new scala.runtime.AbstractFunction0<scala.runtime.BoxedUnit>() {
          @Override
          public scala.runtime.BoxedUnit apply() {
            closeAll();
            return scala.runtime.BoxedUnit.UNIT;
          }
        });
  }
}
