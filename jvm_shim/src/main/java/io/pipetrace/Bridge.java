package io.pipetrace;

import io.pipetrace.compat.SparkCompat;
import io.pipetrace.capture.MlStep;
import io.pipetrace.config.Rules;
import io.pipetrace.config.Settings;
import io.pipetrace.config.Version;
import io.pipetrace.health.Counters;
import io.pipetrace.health.Log;
import io.pipetrace.sink.Internal;
import io.pipetrace.sink.SparkSink;
import io.pipetrace.spool.Run;
import io.pipetrace.tracking.DatabricksContext;
import io.pipetrace.tracking.ExecutionTracker;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.TimeoutException;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.execution.QueryExecution;

/**
 * The whole Python ↔ JVM contract: JSON strings in, JSON strings out. Only
 * python/pipetrace/_jvm.py calls it. Every method catches everything and reports errors in
 * its answer ({"error": "..."}), so Python can raise a clear exception.
 */
public final class Bridge {
  private static final Map<SparkSession, PipetraceListener> ATTACHED =
      Collections.synchronizedMap(new WeakHashMap<>());
  private static final ObjectMapper JSON = new ObjectMapper();

  public Bridge() {}

  /** Register a listener on this running session (idempotent). */
  public String attach(SparkSession session, String settingsJson) {
    try {
      SparkCompat.get();  // a Spark this jar does not support is refused before anything else
      synchronized (ATTACHED) {
        PipetraceListener existing = ATTACHED.get(session);
        if (existing != null && !existing.run().isClosed()) {
          return info(existing.run(), "attach", true);
        }
        PipetraceListener byConf = PipetraceListener.BY_CONF.get(session.sessionState().conf());
        if (byConf != null && byConf.run() != null && !byConf.run().isClosed()) {
          return info(byConf.run(), "conf", true);
        }
        Settings settings = Settings.fromJson(settingsJson, session.sparkContext().getConf());
        ExecutionTracker tracker = ExecutionTracker.forContext(session.sparkContext());
        Run run = Run.open(settings, session.sparkContext().applicationId());
        run.record.session("attach", session.sparkContext(), session.sessionState().conf());
        PipetraceListener listener = new PipetraceListener(run, tracker);
        DatabricksContext.register(session.sparkContext());
        session.listenerManager().register(listener);
        listener.streams = new StreamSinks(session, listener);
        session.streams().addListener(listener.streams);
        ATTACHED.put(session, listener);
        SparkSink.maybeStart(run, session);
        return info(run, "attach", false);
      }
    } catch (Throwable t) {
      return error(t);
    }
  }

  /**
   * Wait until Spark's listener bus has delivered every event posted so far (so every finished
   * action is in the spool), then seal the open segment so a committer can take it.
   */
  public String flush(SparkSession session, String runId, long timeoutMs) {
    try {
      long started = System.currentTimeMillis();
      Run run = Run.get(runId);
      boolean timedOut = false;
      try {
        session.sparkContext().listenerBus().waitUntilEmpty(timeoutMs);
      } catch (TimeoutException e) {
        timedOut = true;
      }
      if (run != null) {
        // ... and until pipetrace's writer has put every captured step in the spool.
        long left = timeoutMs - (System.currentTimeMillis() - started);
        timedOut |= !run.awaitWritten(left);
        run.seal();
      }
      Map<String, Object> m = status(run);
      m.put("timed_out", timedOut);
      return JSON.writeValueAsString(m);
    } catch (Throwable t) {
      return error(t);
    }
  }

  /**
   * Stop capturing on this session, flush, and release the run's spool. Every action that
   * started before this call is captured first: those already finished (their end events may
   * still be queued) and those still running on other threads, up to the timeout. Actions still
   * running then are counted as dropped and reported, never lost silently.
   */
  public String detach(SparkSession session, long timeoutMs) {
    try {
      PipetraceListener listener = ATTACHED.remove(session);
      if (listener == null) {
        return "{\"detached\": false}";
      }
      long started = System.currentTimeMillis();
      long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
      Run run = listener.run();
      // The listener stays registered until the queue holds nothing of ours: taking it off
      // first lost the step of an action whose end event was still queued.
      int running = drain(session, listener, started, deadline);
      session.listenerManager().unregister(listener);
      if (listener.streams != null) {
        session.streams().removeListener(listener.streams);
      }
      listener.detach();
      for (ExecutionTracker.Deferred d : listener.tracker().takeDeferred(listener)) {
        listener.capture(d.funcName, d.qe, d.durationNs, d.error, null);
      }
      if (running > 0) {
        run.dropped.addAndGet(running);
        run.dropReason = running + " action(s) still running when detach() timed out";
        Log.warnOnce("detach-running-" + run.runId, "pipetrace: " + running + " action(s) of run "
            + run.runId + " were still running when detach() timed out; they are not captured");
      }
      String flushed = flush(session, run.runId, Math.max(1, remainingMs(deadline)));
      run.close();
      // Whatever the flush left of the caller's timeout bounds the last commit's retries.
      SparkSink.stop(run.runId, timeoutMs - (System.currentTimeMillis() - started));
      ExecutionTracker.release(listener.tracker());
      return flushed;
    } catch (Throwable t) {
      return error(t);
    }
  }

  /** Deliver queued events, then wait for actions started before {@code cutoffMs} to end. */
  private static int drain(SparkSession session, PipetraceListener listener, long cutoffMs,
      long deadline) throws InterruptedException {
    waitForBus(session, deadline);
    int running = listener.tracker().awaitEnded(cutoffMs, deadline);
    waitForBus(session, deadline);  // their end events reach the listener
    return running;
  }

  private static void waitForBus(SparkSession session, long deadline) {
    try {
      session.sparkContext().listenerBus().waitUntilEmpty(Math.max(1, remainingMs(deadline)));
    } catch (TimeoutException e) {
      // reported by the flush that follows
    }
  }

  private static long remainingMs(long deadlineNs) {
    return (deadlineNs - System.nanoTime()) / 1_000_000L;
  }

  /**
   * Record one Spark ML fit, or a transform that ran Spark jobs, as a step (see
   * {@link MlStep}; only python/pipetrace/ml.py calls this, when the call returns or raises).
   * Waits first, at most {@code wait_ms}, for the listener bus to deliver what the call ran, so
   * its own actions are steps before it and the jobs it ran are counted. A transform that ran
   * no job is no step (answer {"captured": false}): its rows are the later action's, whose
   * step names it ({@code outputQe}, the transform's result: see {@link MlStep#markOutput}).
   */
  public String mlStep(SparkSession session, Object trainingQe, Object outputQe,
      String payloadJson) {
    try {
      PipetraceListener listener = listenerOf(session);
      Map<String, Object> m = new LinkedHashMap<>();
      com.fasterxml.jackson.databind.JsonNode p = JSON.readTree(payloadJson);
      if (outputQe instanceof QueryExecution && p.hasNonNull("output_model")) {
        MlStep.markOutput((QueryExecution) outputQe, p.path("output_model").asText());
      }
      if (listener == null || listener.run() == null || listener.run().isClosed()) {
        m.put("captured", false);
        return JSON.writeValueAsString(m);
      }
      long waitMs = p.path("wait_ms").asLong(2_000);
      waitForBus(session, System.nanoTime() + waitMs * 1_000_000L);
      int jobs = listener.tracker().takeMlJobs(p.path("event_id").asText());
      m.put("spark_jobs", jobs);
      boolean capture = jobs > 0 || !"transform".equals(p.path("kind").asText())
          || p.hasNonNull("error");
      if (capture) {
        listener.captureMl(trainingQe instanceof QueryExecution ? (QueryExecution) trainingQe
            : null, p, jobs);
      }
      m.put("captured", capture);
      return JSON.writeValueAsString(m);
    } catch (Throwable t) {
      return error(t);
    }
  }

  /** The listener capturing this session: attach()'s, or the one Spark built from its conf. */
  private static PipetraceListener listenerOf(SparkSession session) {
    PipetraceListener l = ATTACHED.get(session);
    return l != null ? l : PipetraceListener.BY_CONF.get(session.sessionState().conf());
  }

  /**
   * A session of pipetrace's own on the same SparkContext, for reading the table back: its
   * actions are never steps. The one method that returns an object instead of JSON.
   */
  public SparkSession internalSession(SparkSession session) {
    return Internal.newSession(session);
  }

  /** Commit the run's sealed segments with Spark's writer now (writer=spark); see SparkSink. */
  public String commit(String runId) {
    try {
      SparkSink sink = SparkSink.get(runId);
      Map<String, Object> m = sink == null ? new LinkedHashMap<>() : sink.drainNow();
      return JSON.writeValueAsString(m);
    } catch (Throwable t) {
      return error(t);
    }
  }

  /**
   * Commit the sealed segments of a dead run's spool directory into {@code table} with Spark's
   * writer (python/pipetrace/spark_writer.py: recover_with_spark); the writer's counters.
   */
  public String recoverRun(SparkSession session, String runDir, String table, String format) {
    try {
      return JSON.writeValueAsString(SparkSink.recoverRun(session, runDir, table, format));
    } catch (Throwable t) {
      return error(t);
    }
  }

  /**
   * Write a run's assembled pipeline_runs row (python/pipetrace/run_record.py) beside
   * {@code stepsTable} with Spark's writer, exactly once (see RecordSink).
   */
  public String commitRecord(SparkSession session, String stepsTable, String format,
      String rowJson, long version) {
    try {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("written", io.pipetrace.sink.RecordSink.commit(session, stepsTable, format, rowJson,
          version));
      return JSON.writeValueAsString(m);
    } catch (Throwable t) {
      return error(t);
    }
  }

  public String status(String runId) {
    try {
      Map<String, Object> m = status(Run.get(runId));
      SparkSink sink = SparkSink.get(runId);
      if (sink != null && !m.containsKey("writer")) {
        m.putAll(sink.stats());  // a detached run: what its last commits did
      }
      return JSON.writeValueAsString(m);
    } catch (Throwable t) {
      return error(t);
    }
  }

  private static Map<String, Object> status(Run run) throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    if (run != null) {
      m.put("run_id", run.runId);
      m.put("captured", run.captured.get());
      m.put("dropped", run.dropped.get());
      m.put("drop_reason", run.dropReason);
      m.put("skipped", run.skipped.get());
      m.put("spool_dir", run.dir().toString());
      m.put("key_id", run.keyId());
      m.put("anchor", run.anchor());
      SparkSink sink = SparkSink.get(run.runId);
      if (sink != null) {
        m.putAll(sink.stats());
      }
      m.put("capture_time", run.timings.snapshot());
      m.put("write_time", run.writeTimings.snapshot());
    }
    m.put("tracker_time", ExecutionTracker.busTime());
    m.put("listener_errors", Counters.listenerErrors.get());
    m.put("spark_dropped_events", droppedEvents());
    return m;
  }

  /**
   * Events Spark's listener bus dropped from its queues (queue name → count), from Spark's own
   * LiveListenerBus metrics: a slow listener on the shared queue shows up here first.
   */
  static Map<String, Long> droppedEvents() {
    Map<String, Long> out = new LinkedHashMap<>();
    try {
      org.apache.spark.SparkEnv env = org.apache.spark.SparkEnv.get();
      if (env == null) {
        return out;
      }
      env.metricsSystem().getSourcesByName("LiveListenerBus").foreach(source -> {
        source.metricRegistry().getCounters().forEach((name, counter) -> {
          if (name.endsWith(".numDroppedEvents")) {
            out.put(name.replace("queue.", "").replace(".numDroppedEvents", ""),
                counter.getCount());
          }
        });
        return null;
      });
    } catch (Throwable t) {
      Log.warnOnce("dropped-events", "pipetrace: cannot read Spark's dropped-event counters", t);
    }
    return out;
  }

  private static String info(Run run, String mode, boolean already) throws Exception {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("run_id", run.runId);
    m.put("spool_dir", run.dir().toString());
    m.put("spool", run.settings.spool.toString());
    m.put("table", run.settings.table);
    m.put("mode", mode);
    SparkSink sink = SparkSink.get(run.runId);
    m.put("writer", sink != null ? "spark" : SparkSink.choose(run.settings, null));
    m.put("format", run.settings.format);
    m.put("mask_literals", run.settings.maskLiterals);
    m.put("tags", run.settings.tags);
    m.put("plan_max_chars", run.settings.planMaxChars);
    m.put("max_operators", run.settings.maxOperators);
    m.put("key_id", run.keyId());
    m.put("already_attached", already);
    m.put("pipetrace_version", Version.PIPETRACE);
    m.put("built_for_spark", Version.BUILT_FOR_SPARK);
    return JSON.writeValueAsString(m);
  }

  private static String error(Throwable t) {
    try {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("error", t.getClass().getName() + ": " + t.getMessage());
      return JSON.writeValueAsString(m);
    } catch (Exception e) {
      return "{\"error\": \"unserializable error\"}";
    }
  }

  /**
   * Tag the logical node a DataFrame transformation of the agent created with the agent's step
   * ({"id", "kind", "method", "source", "observed"}: python/pipetrace/agent_steps.py). Answers
   * {"tagged": true|false} or {"error": "..."}.
   */
  public String tagStep(Object dataset, String stepJson) {
    try {
      return "{\"tagged\":" + io.pipetrace.capture.StepTags.tag(dataset, stepJson) + "}";
    } catch (Throwable t) {
      return error(t);
    }
  }

  /**
   * For tests only: apply one of the rules python/pipetrace shares (see {@link Rules#probe})
   * to a JSON input; answers {"value": ...} or {"error": "..."}. tests/test_shared_rules.py
   * checks both sides against tests/fixtures/shared_rules.json with it.
   */
  public String rule(String name, String inputJson) {
    try {
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("value", Rules.probe(name, JSON.readTree(inputJson)));
      return JSON.writeValueAsString(m);
    } catch (Throwable t) {
      return error(t);
    }
  }
}
