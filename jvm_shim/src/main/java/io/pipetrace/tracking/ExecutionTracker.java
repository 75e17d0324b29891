package io.pipetrace.tracking;

import io.pipetrace.PipetraceListener;
import io.pipetrace.StreamSinks;
import io.pipetrace.capture.MlStep;
import io.pipetrace.capture.StepCapture;
import io.pipetrace.compat.SparkCompat;
import io.pipetrace.health.Counters;
import io.pipetrace.health.Log;
import io.pipetrace.health.Timings;
import io.pipetrace.redact.Redactors;
import io.pipetrace.redact.SecretValues;
import io.pipetrace.spool.Run;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.AccumulableInfo;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.apache.spark.scheduler.SparkListenerEvent;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.SparkPlanInfo;
import org.apache.spark.sql.execution.adaptive.AdaptiveSparkPlanExec;
import org.apache.spark.sql.execution.adaptive.QueryStageExec;
import org.apache.spark.sql.execution.exchange.ReusedExchangeExec;
import org.apache.spark.sql.execution.metric.SQLMetric;
import org.apache.spark.util.AccumulatorV2;
import org.apache.spark.sql.execution.ui.SparkListenerDriverAccumUpdates;
import org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd;
import org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart;

/**
 * Per-execution facts a QueryExecutionListener callback does not carry: the SQL execution id,
 * its root (for nested commands), the call site, and the SQL metric values of <em>that</em>
 * execution, summed from task-end accumulator updates.
 *
 * <p>Why not read the metrics off {@code qe.executedPlan}: re-running a DataFrame reuses its
 * QueryExecution and resets those SQLMetric objects, so an asynchronous listener could read the
 * next run's numbers. Updates summed per execution id cannot be overwritten that way.
 *
 * <p>One tracker per SparkContext, on Spark's shared listener queue like every
 * QueryExecutionListener, so all its state is touched by one thread; methods are synchronized
 * only because flush/status may read from Py4J threads.
 */
public final class ExecutionTracker extends SparkListener {
  private static final int MAX_ENDED = 512;     // unclaimed finished executions kept for late claims
  private static final int MAX_LIVE = 10_000;   // hard cap, in case ends are never seen
  private static final int ROOT_NODES = 8;      // plan nodes compared to recognize a re-run
  private static ExecutionTracker current;
  private static int users;                     // attach()/conf listeners using `current`
  // Time this tracker spends on the listener thread, all events (reported by Bridge.status).
  private static final Timings BUS_TIME = new Timings();

  private final SparkContext sc;
  private final LinkedHashMap<Long, Exec> execs = new LinkedHashMap<>();
  private final HashMap<Integer, Exec> stageToExec = new HashMap<>();
  private int ended;
  // Jobs seen per Spark ML step id (MlStep.TAG_PREFIX), SQL or not, until the step is reported.
  private final LinkedHashMap<String, Integer> mlJobs = new LinkedHashMap<>() {
    @Override
    protected boolean removeEldestEntry(Map.Entry<String, Integer> eldest) {
      return size() > MAX_ENDED;
    }
  };

  /** What pipetrace knows about one SQL execution. */
  public static final class Exec {
    public final long id;
    final long rootId;
    final UUID queryId;
    public final long startMs;
    public final String description;
    // Spark's call site long form: pipetrace's action wrappers set it to the same
    // "<action> at <file>:<line>" as the short form, which a job description would hide.
    public String details;
    final long[] rootMetricIds;
    final ExecutionMetrics metrics = new ExecutionMetrics();
    final List<Integer> stages = new ArrayList<>();
    public final List<StepCapture.Nested> nested = new ArrayList<>();
    boolean isEnded;
    boolean claimed;
    // The QueryExecution its end event carried: pairs the execution with its callback exactly,
    // also when several threads run the same DataFrame at once. Weak: unclaimed ends of
    // sessions pipetrace does not capture must not keep plans alive.
    java.lang.ref.WeakReference<QueryExecution> endedQe;
    // "<query id> batch <n>" when this execution is, or runs inside, a streaming micro-batch
    public String stream;
    // The micro-batch's own execution (not an action run inside foreachBatch): the query's id
    public UUID microBatch;
    Exec promoted;  // on a micro-batch: the agent action inside foreachBatch now running
    // The event id of the Spark ML fit/transform this execution ran inside (the job tag
    // MlStep.TAG_PREFIX + id that python/pipetrace/ml.py adds for the call), else null.
    public volatile String parentEventId;

    Exec(long id, long rootId, UUID queryId, long startMs, String description,
        long[] rootMetricIds) {
      this.rootMetricIds = rootMetricIds;
      this.id = id;
      this.rootId = rootId;
      this.queryId = queryId;
      this.startMs = startMs;
      this.description = description;
    }

    /**
     * The text that names the action's Python call site: the description, unless the user's
     * job description replaced it and the details still carry the call site.
     */
    public String callSiteText() {
      return io.pipetrace.capture.Actions.pythonCallSite(description) == null
          && io.pipetrace.capture.Actions.pythonCallSite(details) != null ? details : description;
    }

    public boolean isNested() {
      return rootId != id;
    }
  }

  private ExecutionTracker(SparkContext sc) {
    this.sc = sc;
  }

  /** The tracker of this SparkContext, registered on first use; pair with {@link #release}. */
  public static synchronized ExecutionTracker forContext(SparkContext sc) {
    if (current == null || current.sc != sc) {
      current = new ExecutionTracker(sc);
      users = 0;
      sc.addSparkListener(current);
    }
    users++;
    return current;
  }

  /** One user of the tracker is gone; the last one takes it off the listener bus. */
  public static synchronized void release(ExecutionTracker tracker) {
    if (tracker == null || tracker != current) {
      return;
    }
    if (--users <= 0) {
      tracker.sc.removeSparkListener(tracker);
      current = null;
      users = 0;
    }
  }

  /** Listener-thread time used by the tracker so far (JVM-wide, cumulative). */
  public static Map<String, Object> busTime() {
    return BUS_TIME.snapshot();
  }

  /** A callback that came before the tracker saw its execution's end event. */
  public static final class Deferred {
    final PipetraceListener listener;
    public final String funcName;
    public final QueryExecution qe;
    public final long durationNs;
    public final Throwable error;

    public Deferred(PipetraceListener listener, String funcName, QueryExecution qe, long durationNs,
        Throwable error) {
      this.listener = listener;
      this.funcName = funcName;
      this.qe = qe;
      this.durationNs = durationNs;
      this.error = error;
    }
  }

  private final List<Deferred> deferred = new ArrayList<>();

  /**
   * The execution whose end event carried this very QueryExecution and is not claimed yet.
   * Spark delivers one end event to every listener of the queue in turn, so when the tracker
   * comes first the callback that follows belongs to the end it just saw: exact, whichever
   * thread ran the action and however often the DataFrame is re-run.
   */
  public synchronized Exec claimEnded(QueryExecution qe) {
    Exec match = null;
    for (Exec e : execs.values()) {
      if (!e.claimed && e.endedQe != null && e.endedQe.get() == qe) {
        match = e;  // the latest such end: the one being delivered now
      }
    }
    if (match != null) {
      match.claimed = true;
      match.endedQe = null;
      if (!match.isNested()) {
        forget(match);
      }
    }
    return match;
  }

  /**
   * Keep a callback until the tracker sees the end event that carries its QueryExecution (the
   * callback came first: its bus was registered before the tracker). False when no running
   * execution can be the callback's, so it is captured at once without execution facts.
   */
  public synchronized boolean defer(Deferred d) {
    if (claimCandidate(d.qe) == null && !(SparkCompat.get().queryId(d.qe) == null && anyRunning())) {
      return false;
    }
    deferred.add(d);
    return true;
  }

  /** This listener's callbacks still waiting for their end event (none, normally). */
  public synchronized List<Deferred> takeDeferred(PipetraceListener listener) {
    List<Deferred> out = new ArrayList<>();
    for (Iterator<Deferred> it = deferred.iterator(); it.hasNext(); ) {
      Deferred d = it.next();
      if (d.listener == listener) {
        out.add(d);
        it.remove();
      }
    }
    return out;
  }

  /**
   * Whether any tracked execution is still running. Before Spark 4.2 there is no query id to
   * recognize a command's execution (its plan root has no metric either), yet a callback is
   * always delivered from its own execution's end event, which reaches the tracker next when
   * the session's listener bus is ahead of it on the queue: so any running execution means the
   * callback's end is coming, and onEnd pairs the two exactly by the QueryExecution it carries.
   */
  private boolean anyRunning() {
    for (Exec e : execs.values()) {
      if (!e.claimed && !e.isEnded) {
        return true;
      }
    }
    return false;
  }

  /** A running (not yet ended) execution that may be this QueryExecution's, or null. */
  private Exec claimCandidate(QueryExecution qe) {
    UUID queryId = SparkCompat.get().queryId(qe);
    long metricId = -2;
    for (Exec e : execs.values()) {
      if (e.claimed || e.isEnded) {
        continue;
      }
      if (queryId != null && queryId.equals(e.queryId)) {
        return e;
      }
      if (metricId == -2) {
        metricId = rootMetricId(qe);
      }
      if (metricId >= 0 && contains(e.rootMetricIds, metricId)) {
        return e;
      }
    }
    return null;
  }

  /**
   * Take the oldest unclaimed execution of this QueryExecution. Its first run carries
   * {@code SparkCompat.get().queryId(qe)}; a re-run of the same QueryExecution gets a fresh query id from Spark,
   * so it is recognized by its plan instead: the accumulator id of a metric near the root of
   * {@code qe.executedPlan} appears among the metrics of the plan posted with its start event
   * (the same SQLMetric objects are reused by every run of one physical plan).
   */
  public synchronized Exec claim(QueryExecution qe) {
    UUID queryId = SparkCompat.get().queryId(qe);
    Exec match = null;
    for (Exec e : execs.values()) {
      if (!e.claimed && queryId != null && queryId.equals(e.queryId)) {
        match = e;
        break;
      }
    }
    if (match == null) {
      long metricId = rootMetricId(qe);
      if (metricId >= 0) {
        for (Exec e : execs.values()) {
          if (!e.claimed && contains(e.rootMetricIds, metricId)) {
            match = e;
            break;
          }
        }
      }
    }
    if (match != null) {
      match.claimed = true;
      if (!match.isNested()) {
        forget(match);
      }
    }
    return match;
  }

  private static boolean contains(long[] ids, long id) {
    for (long x : ids) {
      if (x == id) {
        return true;
      }
    }
    return false;
  }

  /** Id of one metric of the root-most operator that has metrics (SparkPlanInfo's traversal). */
  private static long rootMetricId(QueryExecution qe) {
    try {
      Deque<SparkPlan> queue = new ArrayDeque<>();
      queue.add(qe.executedPlan());
      for (int seen = 0; seen < ROOT_NODES && !queue.isEmpty(); seen++) {
        SparkPlan p = queue.poll();
        scala.collection.Iterator<SQLMetric> metrics = p.metrics().valuesIterator();
        if (metrics.hasNext()) {
          return metrics.next().id();
        }
        for (SparkPlan child : planInfoChildren(p)) {
          queue.add(child);
        }
      }
    } catch (Throwable t) {
      // no plan: no match by plan
    }
    return -1;
  }

  private static List<SparkPlan> planInfoChildren(SparkPlan p) {
    List<SparkPlan> out = new ArrayList<>();
    if (p instanceof AdaptiveSparkPlanExec) {
      out.add(((AdaptiveSparkPlanExec) p).executedPlan());
    } else if (p instanceof QueryStageExec) {
      out.add(((QueryStageExec) p).plan());
    } else if (p instanceof ReusedExchangeExec) {
      out.add(((ReusedExchangeExec) p).child());
    } else {
      p.children().foreach(c -> out.add(c));
      p.subqueries().foreach(c -> out.add(c));
    }
    return out;
  }

  /** Metric ids of the first nodes (breadth-first) of the plan Spark posted at start. */
  private static long[] rootMetricIds(SparkPlanInfo info) {
    List<Long> ids = new ArrayList<>();
    Deque<SparkPlanInfo> queue = new ArrayDeque<>();
    queue.add(info);
    for (int seen = 0; seen < ROOT_NODES && !queue.isEmpty(); seen++) {
      SparkPlanInfo p = queue.poll();
      p.metrics().foreach(m -> ids.add(m.accumulatorId()));
      p.children().foreach(c -> queue.add(c));
    }
    long[] out = new long[ids.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = ids.get(i);
    }
    return out;
  }

  /** Root execution record of a nested one, if still known. */
  public synchronized Exec root(Exec nested) {
    return execs.get(nested.rootId);
  }

  /**
   * Metric value of an accumulator in this execution (each partition of each operator run
   * counted once, see {@link ExecutionMetrics}), or null when no task reported it.
   */
  public synchronized Long metric(Exec e, long accumulatorId) {
    return e.metrics.value(accumulatorId);
  }

  /** Whether any task or the driver reported this accumulator in this execution. */
  public synchronized boolean reported(Exec e, long accumulatorId) {
    return e.metrics.reported(accumulatorId);
  }

  public synchronized void forgetNested(Exec root) {
    for (Iterator<Exec> it = execs.values().iterator(); it.hasNext(); ) {
      Exec e = it.next();
      if (e.rootId == root.id && e.id != root.id) {
        e.stages.forEach(stageToExec::remove);
        if (e.isEnded) {
          ended--;
        }
        it.remove();
      }
    }
  }

  private void forget(Exec e) {
    execs.remove(e.id);
    e.stages.forEach(stageToExec::remove);
    if (e.isEnded) {
      ended--;
    }
  }

  @Override
  public synchronized void onOtherEvent(SparkListenerEvent event) {
    long started = System.nanoTime();
    try {
      if (event instanceof SparkListenerSQLExecutionStart) {
        onStart((SparkListenerSQLExecutionStart) event);
      } else if (event instanceof SparkListenerSQLExecutionEnd) {
        onEnd((SparkListenerSQLExecutionEnd) event);
        notifyAll();  // a detach may be waiting for running actions to end
      } else if (event instanceof SparkListenerDriverAccumUpdates) {
        SparkListenerDriverAccumUpdates u = (SparkListenerDriverAccumUpdates) event;
        Exec e = execs.get(u.executionId());
        if (e != null) {
          scala.collection.Iterator<scala.Tuple2<Object, Object>> it = u.accumUpdates().iterator();
          while (it.hasNext()) {
            scala.Tuple2<Object, Object> kv = it.next();
            e.metrics.setDriver((Long) kv._1(), (Long) kv._2());
          }
        }
      }
    } catch (Throwable t) {
      Counters.listenerErrors.incrementAndGet();
      Log.warnOnce("tracker-event", "pipetrace: could not track a SQL execution event", t);
    } finally {
      BUS_TIME.record(System.nanoTime() - started);
    }
  }

  private void onStart(SparkListenerSQLExecutionStart s) {
    // The session's changed settings as they were when the action started (Spark redacts the
    // values of names matching spark.redaction.regex here; job properties below carry those).
    SecretValues.KNOWN.learn(s.modifiedConfigs(), Redactors.keyRegex(sc));
    UUID queryId = SparkCompat.get().queryId(s);
    long root = s.rootExecutionId().isDefined() ? (Long) s.rootExecutionId().get() : s.executionId();
    String stream = streamBatch(s.description());
    Exec rootExec = root == s.executionId() ? null : execs.get(root);
    boolean promote = false;
    if (rootExec != null && rootExec.stream != null) {
      // An action inside foreachBatch runs nested in the micro-batch, which itself reports no
      // action: the agent's action is a step of its own, labelled with its batch; what that
      // action nests in turn (saveAsTable's insert) stays part of it.
      stream = rootExec.stream;
      Exec running = rootExec.promoted;
      if (running != null && !running.isEnded && !running.claimed) {
        root = running.id;
      } else {
        root = s.executionId();
        promote = true;
      }
    }
    long[] metricIds;
    try {
      metricIds = rootMetricIds(s.sparkPlanInfo());
    } catch (Throwable t) {
      metricIds = new long[0];
    }
    Exec e = new Exec(s.executionId(), root, queryId, s.time(), s.description(), metricIds);
    e.stream = stream;
    e.details = s.details();
    e.parentEventId = MlStep.stepOf(s.jobTags().iterator());
    if (stream != null && !promote && root == s.executionId()) {
      e.microBatch = streamQuery(s.description());
    } else if (promote && rootExec.microBatch != null) {
      // A V2 sink's batch runs as a collect nested in the micro-batch: that collect is the
      // batch's write. Inside foreachBatch (a V1 sink) nested actions are the function's own.
      StreamSinks.Sink sink = StreamSinks.of(rootExec.microBatch);
      if (sink != null && !sink.addBatch) {
        e.microBatch = rootExec.microBatch;
      }
    }
    execs.put(s.executionId(), e);
    if (promote) {
      rootExec.promoted = e;
    }
    if (execs.size() > MAX_LIVE) {
      forget(execs.values().iterator().next());
    }
  }

  // Spark's description of a micro-batch: "<name>\nid = <uuid>\nrunId = <uuid>\nbatch = <n>"
  private static final java.util.regex.Pattern STREAM_BATCH = java.util.regex.Pattern.compile(
      "(?s).*\\bid = ([0-9a-f-]{36})\\s+runId = [0-9a-f-]{36}\\s+batch = (\\d+).*");

  private static UUID streamQuery(String description) {
    java.util.regex.Matcher m = STREAM_BATCH.matcher(description);
    return m.matches() ? UUID.fromString(m.group(1)) : null;
  }

  /** "query &lt;id&gt; batch &lt;n&gt;" for a micro-batch's description, else null. */
  static String streamBatch(String description) {
    if (description == null) {
      return null;
    }
    java.util.regex.Matcher m = STREAM_BATCH.matcher(description);
    return m.matches() ? "query " + m.group(1) + " batch " + m.group(2) : null;
  }

  private void onEnd(SparkListenerSQLExecutionEnd end) {
    Exec e = execs.get(end.executionId());
    if (e == null) {
      // Started before the tracker was listening: a callback deferred for it is captured now,
      // without execution facts, rather than held until detach.
      QueryExecution untracked = endQe(end);
      for (Iterator<Deferred> it = deferred.iterator(); untracked != null && it.hasNext(); ) {
        Deferred d = it.next();
        if (d.qe == untracked) {
          it.remove();
          d.listener.capture(d.funcName, d.qe, d.durationNs, d.error, null);
        }
      }
      return;
    }
    QueryExecution qe = endQe(end);
    if (qe != null && !e.claimed) {
      for (Iterator<Deferred> it = deferred.iterator(); it.hasNext(); ) {
        Deferred d = it.next();
        if (d.qe == qe) {
          it.remove();
          e.claimed = true;
          e.stages.forEach(stageToExec::remove);
          e.stages.clear();
          d.listener.capture(d.funcName, d.qe, d.durationNs, d.error, e);
          if (!e.isNested()) {
            forget(e);
          }
          return;
        }
      }
      e.endedQe = new java.lang.ref.WeakReference<>(qe);
      StreamSinks.Sink sink = e.microBatch == null ? null : StreamSinks.of(e.microBatch);
      if (sink != null && sink.addBatch && !sink.foreachBatch) {
        // A V1 sink's batch (files, Delta): addBatch wrote it and no callback will come.
        e.claimed = true;
        e.stages.forEach(stageToExec::remove);
        e.stages.clear();
        String error = end.errorMessage().isDefined() && !end.errorMessage().get().isEmpty()
            ? end.errorMessage().get() : null;
        sink.listener.captureMicroBatch(qe, e, end.time(), error);
        forget(e);
        return;
      }
    }
    e.stages.forEach(stageToExec::remove);
    e.stages.clear();
    if (e.claimed) {
      // Callback came first (its listener bus registered before us): the record is done.
      if (!e.isNested()) {
        forget(e);
      }
      return;
    }
    e.isEnded = true;
    ended++;
    // Keep recent unclaimed ends for a callback that comes after us; drop the oldest beyond that.
    if (ended > MAX_ENDED) {
      for (Iterator<Exec> it = execs.values().iterator(); it.hasNext() && ended > MAX_ENDED; ) {
        Exec old = it.next();
        if (old.isEnded && !old.isNested()) {
          it.remove();
          ended--;
        }
      }
    }
  }

  private static QueryExecution endQe(SparkListenerSQLExecutionEnd end) {
    try {
      return end.qe();
    } catch (Throwable t) {
      return null;  // a Spark without the field: callbacks fall back to claim()
    }
  }

  /**
   * Wait until every root execution that started at or before {@code cutoffMs} has ended, or
   * until {@code deadlineNs}; returns how many are still running.
   */
  public synchronized int awaitEnded(long cutoffMs, long deadlineNs) throws InterruptedException {
    while (true) {
      int running = 0;
      for (Exec e : execs.values()) {
        if (!e.isEnded && !e.claimed && !e.isNested() && e.startMs <= cutoffMs) {
          running++;
        }
      }
      long left = deadlineNs - System.nanoTime();
      if (running == 0 || left <= 0) {
        return running;
      }
      wait(Math.max(1, left / 1_000_000));
    }
  }

  @Override
  public synchronized void onJobStart(SparkListenerJobStart job) {
    long started = System.nanoTime();
    try {
      // Every spark.* session setting as it was when the job was submitted, unredacted: the
      // steps of this action are redacted later, after the agent may have unset them.
      SecretValues.KNOWN.learn(job.properties(), Redactors.keyRegex(sc));
      String id = job.properties() == null ? null
          : job.properties().getProperty("spark.sql.execution.id");
      String ml = job.properties() == null ? null
          : MlStep.stepOf(job.properties().getProperty("spark.job.tags"));
      if (ml != null) {
        mlJobs.merge(ml, 1, Integer::sum);
      }
      if (id == null) {
        return;
      }
      Exec e = execs.get(Long.parseLong(id));
      if (e == null) {
        return;
      }
      if (ml != null && e.parentEventId == null) {
        e.parentEventId = ml;
      }
      scala.collection.Iterator<Object> it = job.stageIds().iterator();
      while (it.hasNext()) {
        Integer stage = (Integer) it.next();
        stageToExec.put(stage, e);
        e.stages.add(stage);
      }
    } catch (Throwable t) {
      Counters.listenerErrors.incrementAndGet();
      Log.warnOnce("tracker-job", "pipetrace: could not track a job start", t);
    } finally {
      BUS_TIME.record(System.nanoTime() - started);
    }
  }

  @Override
  public synchronized void onTaskEnd(SparkListenerTaskEnd task) {
    long started = System.nanoTime();
    try {
      Exec e = stageToExec.get(task.stageId());
      // A failed or killed task reports no SQL metric values; a second success of the same
      // partition (speculative copy, resubmitted stage) repeats rows already counted.
      if (e == null || task.taskInfo() == null || !task.taskInfo().successful()
          || !e.metrics.firstSuccess(task.stageId(), task.taskInfo().partitionId())) {
        return;
      }
      if (task.taskMetrics() != null) {
        // The task's own accumulator copies, zeros included: Spark leaves zero updates out of
        // taskInfo.accumulables, and an operator that produced 0 rows must read 0, not unknown.
        scala.collection.Iterator<AccumulatorV2<?, ?>> accs =
            task.taskMetrics().accumulators().iterator();
        while (accs.hasNext()) {
          AccumulatorV2<?, ?> acc = accs.next();
          if (acc instanceof SQLMetric) {
            SQLMetric m = (SQLMetric) acc;
            // sum metrics (rows, files) start at 0; size and timing ones mark "no value" as zero
            if ("sum".equals(m.metricType()) || !m.isZero()) {
              e.metrics.add(task.stageId(), m.id(), m.value());
            }
          }
        }
        return;
      }
      scala.collection.Iterator<AccumulableInfo> it = task.taskInfo().accumulables().iterator();
      while (it.hasNext()) {
        AccumulableInfo acc = it.next();
        // SQL metrics carry metadata "sql"; the rest are task metrics we don't need.
        if (acc.metadata().isDefined() && acc.update().isDefined()
            && acc.update().get() instanceof Long) {
          e.metrics.add(task.stageId(), acc.id(), (Long) acc.update().get());
        }
      }
    } catch (Throwable t) {
      Counters.listenerErrors.incrementAndGet();
      Log.warnOnce("tracker-task", "pipetrace: could not track a task end", t);
    } finally {
      BUS_TIME.record(System.nanoTime() - started);
    }
  }

  /** How many jobs ran inside the Spark ML step {@code id} (forgets it): 0 when none. */
  public synchronized int takeMlJobs(String id) {
    Integer n = mlJobs.remove(id);
    return n == null ? 0 : n;
  }

  @Override
  public void onApplicationEnd(SparkListenerApplicationEnd end) {
    // The app is stopping: seal every open spool segment so the steps can be committed.
    Run.closeAll();
  }
}
