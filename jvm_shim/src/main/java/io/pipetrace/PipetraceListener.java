package io.pipetrace;

import io.pipetrace.capture.StepCapture;
import io.pipetrace.compat.SparkCompat;
import io.pipetrace.config.Settings;
import io.pipetrace.health.Counters;
import io.pipetrace.health.Faults;
import io.pipetrace.health.Log;
import io.pipetrace.redact.Literals;
import io.pipetrace.redact.Redactor;
import io.pipetrace.redact.Redactors;
import io.pipetrace.redact.SecretValues;
import io.pipetrace.sink.Internal;
import io.pipetrace.sink.SparkSink;
import io.pipetrace.spool.Run;
import io.pipetrace.tracking.DatabricksContext;
import io.pipetrace.tracking.ExecutionTracker;

import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.SparkEnv;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.util.QueryExecutionListener;

/**
 * pipetrace's capture: one step per named Spark action, appended to the run's spool.
 *
 * <p>Registered either by configuration ({@code spark.sql.queryExecutionListeners=
 * io.pipetrace.PipetraceListener}, settings under {@code spark.pipetrace.*}) or by
 * {@code pipetrace.spark.attach(spark)} through {@link Bridge}. Callbacks run on Spark's
 * shared listener thread; they catch everything, never throw into Spark, and do only the
 * plan walk and the metric snapshot: redaction, the JSON and the file append are
 * {@link io.pipetrace.spool.StepWriter}'s, on pipetrace's own thread.
 */
public class PipetraceListener implements QueryExecutionListener {
  /** Listeners created from spark.sql.queryExecutionListeners, by the SQLConf of their session. */
  static final Map<SQLConf, PipetraceListener> BY_CONF =
      Collections.synchronizedMap(new WeakHashMap<>());

  private static final int RECENT_COMMANDS = 64;

  private final Run run;
  private final ExecutionTracker tracker;
  // Output ids of this session's recent commands, to recognize a later show() of their rows.
  private final java.util.Set<String> commandOutputs = java.util.Collections.newSetFromMap(
      new java.util.LinkedHashMap<String, Boolean>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
          return size() > RECENT_COMMANDS;
        }
      });
  private volatile boolean detached;
  StreamSinks streams;     // the sinks of streaming queries started while attached (attach())

  /** Used by Spark for spark.sql.queryExecutionListeners. */
  public PipetraceListener(SparkConf conf) {
    Settings settings = Settings.fromConf(conf);
    Run opened = null;
    ExecutionTracker t = null;
    try {
      if (settings.enabled && !Internal.isCreating()) {
        SparkCompat.get();  // refuses a Spark this jar was not built for: capture stays off
        SparkContext sc = SparkContext.getOrCreate();  // the session's own, already running
        t = ExecutionTracker.forContext(sc);
        opened = Run.open(settings, sc.applicationId());
        // Spark builds session listeners inside SQLConf.withExistingConf(sessionConf).
        BY_CONF.put(SQLConf.get(), this);
        opened.record.session("conf", sc, SQLConf.get());
        DatabricksContext.register(sc);
        SparkSink.maybeStart(opened, null);
        Log.info("pipetrace: capturing run " + opened.runId + " into spool " + opened.dir());
      }
    } catch (Throwable e) {
      Log.warnOnce("listener-init", "pipetrace: capture is off for this session: " + e, e);
    }
    run = opened;
    tracker = t;
  }

  /** Used by Spark when it cannot pass a SparkConf. */
  public PipetraceListener() {
    this(SparkEnv.get() != null ? SparkEnv.get().conf() : new SparkConf());
  }

  /** Used by attach(). */
  PipetraceListener(Run run, ExecutionTracker tracker) {
    this.run = run;
    this.tracker = tracker;
  }

  Run run() {
    return run;
  }

  void detach() {
    detached = true;
  }

  @Override
  public void onSuccess(String funcName, QueryExecution qe, long durationNs) {
    handle(funcName, qe, durationNs, null);
  }

  @Override
  public void onFailure(String funcName, QueryExecution qe, Exception exception) {
    handle(funcName, qe, -1, exception);
  }

  ExecutionTracker tracker() {
    return tracker;
  }

  private void handle(String funcName, QueryExecution qe, long durationNs, Throwable error) {
    try {
      if (run == null || detached || Internal.isInternal(qe.sparkSession())) {
        return;
      }
      if (run.isClosed()) {
        // e.g. the JVM is shutting down while actions are still reported: say so, don't hide it
        run.dropped.incrementAndGet();
        run.dropReason = "a " + funcName + " action was reported after the run closed";
        Log.warnOnce("closed-" + run.runId, "pipetrace: run " + run.runId + " was already closed"
            + " when a " + funcName + " action was reported; the step is counted as dropped");
        return;
      }
      Faults.maybeHold();  // test hook: hold the listener thread (pipetrace.faults.*)
      ExecutionTracker.Exec exec = tracker.claimEnded(qe);
      if (exec == null) {
        // Our callback came before the tracker saw this execution's end: capture when it does
        // (the same end event, next in the queue), so the step gets its own execution's facts.
        if (tracker.defer(new ExecutionTracker.Deferred(this, funcName, qe, durationNs, error))) {
          return;
        }
        exec = tracker.claim(qe);
      }
      capture(funcName, qe, durationNs, error, exec);
    } catch (Throwable t) {
      Counters.listenerErrors.incrementAndGet();
      Log.warnOnce("listener-" + funcName, "pipetrace: could not capture a " + funcName
          + " action; the job is not affected", t);
    }
  }

  /**
   * A micro-batch a V1 streaming sink wrote with addBatch (files, Delta): no callback reports
   * it, so the tracker hands it over when its execution ends (see {@link StreamSinks}).
   */
  public void captureMicroBatch(QueryExecution qe, ExecutionTracker.Exec exec, long endMs,
      String error) {
    try {
      if (run == null || detached) {
        return;
      }
      if (run.isClosed()) {
        run.dropped.incrementAndGet();
        run.dropReason = "a streaming micro-batch ended after the run closed";
        return;
      }
      long durationNs = Math.max(0, endMs - exec.startMs) * 1_000_000L;
      capture("addBatch", qe, error == null ? durationNs : -1, error == null ? null
          : new BatchFailed(error), exec);
    } catch (Throwable t) {
      Counters.listenerErrors.incrementAndGet();
      Log.warnOnce("listener-addBatch", "pipetrace: could not capture a streaming micro-batch;"
          + " the query is not affected", t);
    }
  }

  /** A micro-batch's failure, as its end event reports it (a message, no exception). */
  static final class BatchFailed extends Exception {
    BatchFailed(String message) {
      super(message, null, false, false);
    }
  }

  /** Turn one action and its execution's facts into a step (or a nested part of one). */
  public void capture(String funcName, QueryExecution qe, long durationNs, Throwable error,
      ExecutionTracker.Exec exec) {
    // Timed so Bridge.status can report the per-step cost on the listener thread (benchmarks).
    long started = System.nanoTime();
    try {
      StepCapture capture = new StepCapture(run, redactor(qe), tracker, exec);
      if (exec != null && exec.isNested()) {
        // e.g. the insert inside saveAsTable: part of its root's step, not a step of its own.
        ExecutionTracker.Exec root = tracker.root(exec);
        if (root != null) {
          root.nested.add(capture.nested(qe));
        }
        run.skipped.incrementAndGet();
        return;
      }
      if (StepCapture.isDeltaLogReplay(qe)) {
        // Delta's own log replay (a snapshot's protocol, metadata, file list), run on the
        // user's thread while Delta resolves a table: Delta's work, not the user's action.
        run.skipped.incrementAndGet();
        return;
      }
      if (StepCapture.isCommandResultEcho(funcName, qe, commandOutputs)) {
        run.skipped.incrementAndGet();
        return;
      }
      if ("command".equals(funcName)) {
        String ids = StepCapture.outputIds(qe.analyzed());
        if (!ids.isEmpty()) {
          commandOutputs.add(ids);
        }
      }
      // Reading the plans and metrics happens here; redacting, hashing and writing the row
      // happen on pipetrace's own thread.
      run.submit(capture.step(funcName, qe, durationNs, error), capture.redactor());
    } catch (Throwable t) {
      Counters.listenerErrors.incrementAndGet();
      Log.warnOnce("listener-" + funcName, "pipetrace: could not capture a " + funcName
          + " action; the job is not affected", t);
    } finally {
      run.timings.record(System.nanoTime() - started);
    }
  }

  /** A Spark ML step reported from Python (see {@link io.pipetrace.capture.MlStep}). */
  void captureMl(QueryExecution training, com.fasterxml.jackson.databind.JsonNode payload,
      int jobs) {
    if (run == null || detached || run.isClosed()) {
      return;
    }
    Redactor r = training != null ? redactor(training)
        : Redactors.of(org.apache.spark.sql.SparkSession.active());
    run.submit(io.pipetrace.capture.MlStep.row(run, r, training, payload, jobs), r);
  }

  /**
   * The session's redactor (rebuilt only when its settings or the learned secrets changed),
   * plus this action's literals with mask_literals.
   */
  private Redactor redactor(QueryExecution qe) {
    // SET k=v keeps its value in its own plan: learned before anything of the step is redacted,
    // and for later steps too, however soon the agent unsets it.
    SecretValues.KNOWN.learn(qe.logical(), Redactors.keyRegex(qe.sparkSession().sparkContext()));
    Redactor r = Redactors.of(qe.sparkSession());
    if (run.settings.maskLiterals) {
      try {
        r = r.maskingLiterals(Literals.of(qe));
      } catch (Throwable t) {
        Log.warnOnce("mask-literals", "pipetrace: cannot collect literals to mask", t);
      }
    }
    return r;
  }
}
