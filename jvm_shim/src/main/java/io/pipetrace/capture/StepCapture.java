package io.pipetrace.capture;

import io.pipetrace.StreamSinks;
import io.pipetrace.config.Version;
import io.pipetrace.health.Counters;
import io.pipetrace.redact.Redactor;
import io.pipetrace.spool.Run;
import io.pipetrace.tracking.DatabricksContext;
import io.pipetrace.tracking.ExecutionMetrics;
import io.pipetrace.tracking.ExecutionTracker;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.apache.spark.SparkContext;
import org.apache.spark.sql.catalyst.plans.logical.CommandResult;
import org.apache.spark.sql.catalyst.plans.logical.LocalRelation;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.metric.SQLMetric;

/** Turns one action (funcName, QueryExecution, outcome) into one step: a row of the schema. */
public final class StepCapture {
  private static final int MAX_ERROR = 4_000;
  private static final int MAX_WARNING = 1_000;

  /** What a nested execution (e.g. the insert inside saveAsTable) adds to its root's step. */
  public static final class Nested {
    final List<Operators.Op> operators;
    final Long rowsOut;
    final Relations.Rel output;
    // A nested write's own plans (logical, optimized, physical): the query the command wrote.
    final PlanText.Text[] plans;
    final List<InputIdentity.Scan> scans;

    Nested(List<Operators.Op> operators, Long rowsOut, Relations.Rel output,
        PlanText.Text[] plans, List<InputIdentity.Scan> scans) {
      this.operators = operators;
      this.rowsOut = rowsOut;
      this.output = output;
      this.plans = plans;
      this.scans = scans;
    }
  }

  /** Heads the plan of the query a write command wrote, after the command's own plan. */
  static final String WROTE_HEADER = "== the query this command wrote (its nested write) ==";

  private final Run run;
  private final Redactor redactor;
  private final ExecutionTracker tracker;
  private final ExecutionTracker.Exec exec;
  private final List<String> warnings = new ArrayList<>();
  private boolean failed;  // the action failed: operators show how far their tasks got

  public StepCapture(Run run, Redactor redactor, ExecutionTracker tracker,
      ExecutionTracker.Exec exec) {
    this.run = run;
    this.redactor = redactor;
    this.tracker = tracker;
    this.exec = exec;
  }

  /**
   * True when this action only reads the result of a command that already was a step:
   * {@code spark.sql("SHOW TABLES").collect()} or {@code .show()} is one user action. The
   * command's rows reach later plans as a CommandResult, or as a LocalRelation with the
   * command's output attributes (same expression ids), listed in {@code commandOutputs}.
   */
  public static boolean isCommandResultEcho(String funcName, QueryExecution qe,
      java.util.Set<String> commandOutputs) {
    if ("command".equals(funcName)) {
      return false;
    }
    try {
      // commandExecuted: eager commands already replaced by their CommandResult.
      scala.collection.Iterator<LogicalPlan> leaves = qe.commandExecuted().collectLeaves().iterator();
      boolean any = false;
      while (leaves.hasNext()) {
        LogicalPlan leaf = leaves.next();
        boolean echo = leaf instanceof CommandResult
            || (leaf instanceof LocalRelation && commandOutputs.contains(outputIds(leaf)));
        if (!echo) {
          return false;
        }
        any = true;
      }
      return any;
    } catch (Throwable t) {
      return false;
    }
  }

  /** The expression ids of a plan's output, e.g. "12,13,14": identifies a command's result rows. */
  public static String outputIds(LogicalPlan plan) {
    StringBuilder sb = new StringBuilder();
    scala.collection.Iterator<org.apache.spark.sql.catalyst.expressions.Attribute> it =
        plan.output().iterator();
    while (it.hasNext()) {
      sb.append(it.next().exprId().id()).append(',');
    }
    return sb.toString();
  }

  /** True when the action only read Delta log files: Delta's log replay, not a user action. */
  public static boolean isDeltaLogReplay(QueryExecution qe) {
    try {
      return Relations.readsOnlyDeltaLog(qe.analyzed());
    } catch (Throwable t) {
      return false;
    }
  }

  /** Operators and written rows of a nested execution, for its root step. */
  public Nested nested(QueryExecution qe) {
    LogicalPlan analyzed = qe.analyzed();
    SparkPlan executed = qe.executedPlan();
    List<Operators.Op> ops = Operators.walk(executed, OperatorRows.of(executed, metrics), redactor,
        0, null, warnings, null);
    Relations.Rel output = Relations.output(analyzed, redactor);
    PlanText.Text[] plans = null;
    if (output != null) {
      // saveAsTable's and CTAS's own plans show the command node; the insert they run nested
      // holds the query tree that was written, optimized and executed.
      int max = run.settings.planMaxChars;
      plans = new PlanText.Text[] {
          attempt("nested logical_plan", () -> PlanText.of(analyzed, max, redactor)),
          attempt("nested optimized_plan", () -> PlanText.of(qe.optimizedPlan(), max, redactor)),
          attempt("nested physical_plan", () -> PlanText.of(executed, max, redactor))};
    }
    List<InputIdentity.Scan> scans = attempt("input files",
        () -> InputIdentity.scans(executed, metrics));
    return new Nested(ops, ops.isEmpty() ? null : ops.get(0).rowsOut, output, plans,
        scans == null ? List.of() : scans);
  }

  /** The action of a streaming query's micro-batch. */
  static final String STREAM_WRITE = "stream_write";

  /**
   * The step as a row (column name → value; lists and maps for nested columns), without seq and
   * the hash chain, which {@link Run#appendStep} assigns in order. Parts that fail are left null
   * and listed in capture_warnings: a partial step, never a lost one. Not redacted yet: that is
   * {@link io.pipetrace.spool.StepWriter}'s last pass, off Spark's listener thread, with
   * {@link #redactor()}.
   */
  public Map<String, Object> step(String funcName, QueryExecution qe, long durationNs,
      Throwable error) {
    failed = error != null;
    SparkContext sc = qe.sparkSession().sparkContext();
    LogicalPlan analyzed = attempt("analyzed plan", qe::analyzed);
    Relations.Rel output = analyzed == null ? null
        : attempt("output", () -> Relations.output(analyzed, redactor));
    List<Nested> nested = exec == null ? List.of() : exec.nested;
    if (exec != null && !nested.isEmpty()) {
      tracker.forgetNested(exec);
    }
    if (output == null) {
      for (Nested n : nested) {
        if (n.output != null) {
          output = n.output;
          break;
        }
      }
    }
    if (output != null) {
      final Relations.Rel written = output;
      attempt("output name", () -> {
        Relations.qualifyTable(written, qe.sparkSession().sessionState().catalog());
        return null;
      });
    }
    String description = exec == null ? null : exec.callSiteText();
    boolean microBatch = exec != null && exec.microBatch != null;
    String action = microBatch ? STREAM_WRITE : Actions.normalize(funcName, description,
        output != null, analyzed instanceof org.apache.spark.sql.catalyst.plans.logical.GlobalLimit);
    StreamSinks.Sink sink = microBatch ? StreamSinks.of(exec.microBatch) : null;
    if (microBatch) {
      // A streaming query's micro-batch: a write to its sink, whatever Spark called it
      // (collect for a V2 sink, addBatch for a V1 one). Its rows are the rows handed to the
      // sink, read like a collect's (the sink's own write reports none for V1 sinks).
      if (sink != null) {
        output = sink.output;
      } else {
        warnings.add("output unknown: the streaming query started before pipetrace was attached");
      }
    }
    int max = run.settings.planMaxChars;
    PlanCache cache = PlanCache.of(qe, max, redactor);
    SparkPlan executed = attempt("physical plan", qe::executedPlan);
    // Rendered first: a new final plan (AQE) also renews the cached operator descriptions.
    PlanText.Text physical = executed == null ? null
        : cache.physical(executed, () -> attempt("physical_plan",
            () -> PlanText.of(executed, max, redactor)));
    OperatorRows rows = executed == null ? null
        : attempt("row counts", () -> OperatorRows.of(executed, metrics, action));
    List<Operators.Op> ops = rows == null ? null
        : attempt("operators", () -> Operators.walk(executed, rows, redactor, 0, null,
            warnings, cache.operators));
    if (ops == null) {
      ops = new ArrayList<>();
    }
    Integer rootId = ops.isEmpty() ? null : ops.get(0).id;
    for (Nested n : nested) {
      int offset = ops.size();
      for (Operators.Op op : n.operators) {
        op.id += offset;
        op.parentId = op.parentId == null ? rootId : op.parentId + offset;
        ops.add(op);
      }
    }
    final Relations.Rel out = output;
    // A failed action returned nothing; its operators still show how far it got.
    OperatorRows.Known result = error != null || rows == null ? null
        : attempt("rows_out", () -> ActionRows.of(action, executed, analyzed,
            out != null && !STREAM_WRITE.equals(action), nested, rows));
    if (result != null && result.rows == null && result.reason != null) {
      warnings.add("rows_out unknown: " + result.reason);
    }
    warnUnknownOperators(ops);
    if (error != null && !ops.isEmpty()) {
      warnings.add("partial counts: the action failed; each operator's rows are those its"
          + " completed tasks produced (a failed task counts nothing), i.e. how far it got");
    }

    long now = System.currentTimeMillis();
    Map<String, Object> row = new LinkedHashMap<>();
    row.put("schema_version", Version.SCHEMA);
    row.put("event_id", UUID.randomUUID().toString());
    row.put("run_id", run.runId);
    row.put("captured_at", Instant.ofEpochMilli(now));
    if (exec != null) {
      row.put("started_at", Instant.ofEpochMilli(exec.startMs));
      row.put("execution_id", exec.id);
    }
    row.put("app_id", sc.applicationId());
    row.put("app_name", sc.appName());
    row.put("spark_version", sc.version());
    row.put("pipetrace_version", Version.PIPETRACE);
    row.put("user", sc.sparkUser());
    row.put("action", action);
    row.put("spark_func", funcName);
    row.put("status", error == null ? "SUCCEEDED" : "FAILED");
    if (error != null) {
      row.put("error", errorText(error));
    }
    long durationMs = durationNs >= 0 ? durationNs / 1_000_000
        : exec != null ? Math.max(0, now - exec.startMs) : -1;
    if (durationMs >= 0) {
      row.put("duration_ms", durationMs);
    }
    List<InputIdentity.Scan> scans = attempt("input files",
        () -> InputIdentity.scans(executed, metrics));
    if (scans != null) {
      for (Nested n : nested) {
        scans.addAll(n.scans);
      }
    }
    row.put("inputs", inputs(analyzed, cache, scans));
    if (output != null) {
      Map<String, Object> o = new LinkedHashMap<>();
      o.put("kind", output.kind);
      o.put("name", output.name);
      o.put("format", output.format);
      o.put("mode", output.mode);
      o.put("path", output.path);
      if (output.path == null && output.v1Table != null) {
        o.put(OutputPath.PENDING, new OutputPath.Pending(
            qe.sparkSession().sessionState().catalog(), output.v1Table));
      }
      if (error == null && "delta".equals(output.format) && exec != null) {
        DeltaCommits.Pending pending = attempt("output version",
            () -> deltaPending(qe, out, exec.startMs, now));
        if (pending != null) {
          o.put(DeltaCommits.PENDING, pending);
        }
      }
      row.put("output", o);
    }
    row.put("column_lineage", columnLineage(analyzed, out, microBatch));
    row.put("output_schema", attempt("output_schema", () -> outputSchema((out != null
        && out.query != null ? out.query.schema() : analyzed.schema()).toDDL(), max)));
    // Delta's DML and maintenance commands: their rows are Delta's commit metrics (output).
    boolean deltaCommand = out != null && out.deltaCommand;
    row.put("rows_out", result == null || deltaCommand ? null : result.rows);
    final List<Operators.Op> allOps = ops;
    // Before the operators are written: an operator's source comes from its agent step.
    row.put("logical_steps", analyzed == null ? null : attempt("logical_steps",
        () -> LogicalSteps.of(analyzed, allOps, qe.observedMetrics(), redactor)));
    row.put("operators", operators(ops, run.settings.maxOperators));
    boolean truncated = ops.size() > run.settings.maxOperators;
    if (cache.logical == null) {
      cache.logical = attempt("logical_plan", () -> PlanText.of(analyzed, max, redactor));
    }
    if (cache.optimized == null) {
      cache.optimized = attempt("optimized_plan",
          () -> PlanText.of(qe.optimizedPlan(), max, redactor));
    }
    if (cache.fingerprint == null && analyzed != null) {
      cache.fingerprint = PlanText.fingerprint(analyzed, redactor);
    }
    PlanText.Text[] texts = {cache.logical, cache.optimized, physical};
    for (Nested n : nested) {
      if (n.plans != null) {
        for (int i = 0; i < texts.length; i++) {
          if (texts[i] != null && n.plans[i] != null) {
            texts[i] = PlanText.append(texts[i], WROTE_HEADER, n.plans[i]);
          }
        }
        break;
      }
    }
    for (Object[] kv : new Object[][] {{"logical_plan", texts[0]}, {"optimized_plan", texts[1]},
        {"physical_plan", texts[2]}}) {
      PlanText.Text t = (PlanText.Text) kv[1];
      if (t != null && !t.isEmpty()) {
        row.put((String) kv[0], t);  // written to the spool as its text
        truncated |= t.truncated;
      }
    }
    row.put("plan_truncated", truncated);
    if (cache.fingerprint != null) {
      row.put("plan_fingerprint", cache.fingerprint);
    }
    String[] py = Actions.callSite(funcName, description,
        analyzed instanceof org.apache.spark.sql.catalyst.plans.logical.GlobalLimit);
    if (py != null) {
      row.put("call_site", redactor.redact(py[1]));
    }
    row.put("tags", run.settings.tags);
    Map<String, String> context = DatabricksContext.of(qe.sparkSession(),
        exec == null ? -1 : exec.id);
    if (exec != null && exec.stream != null) {
      context = new LinkedHashMap<>(context);
      context.put("stream_batch", exec.stream);  // a streaming query's micro-batch
      if (sink != null && sink.queryName != null) {
        context.put("stream_query", sink.queryName);
      }
    }
    String model = analyzed == null ? null : attempt("ml_model", () -> MlStep.modelsIn(analyzed));
    if (model != null) {
      // reads the output of a Spark ML transform: which model (or transformer) made it
      context = new LinkedHashMap<>(context);
      context.put("ml_model", model);
    }
    row.put("context", context.isEmpty() ? null : context);
    if (exec != null && exec.parentEventId != null) {
      row.put("parent_event_id", exec.parentEventId);  // Spark ML's own action inside a fit
    }
    row.put("capture_warnings", warnings);
    return row;
  }

  /**
   * Keys whose values need no last redaction pass: ids, and texts that redact themselves when
   * written ({@link PlanText.Text}) or were redacted as they were cut (the error).
   */
  public static final java.util.Set<String> ALREADY_REDACTED = java.util.Set.of(
      "run_id", "event_id", "logical_plan", "optimized_plan", "physical_plan", "output_schema",
      "error");

  /** This execution's metric values (see {@link ExecutionMetrics}). */
  private final OperatorRows.Metrics metrics = new OperatorRows.Metrics() {
    @Override
    public Long value(SQLMetric m) {
      if (exec != null && tracker.reported(exec, m.id())) {
        return tracker.metric(exec, m.id());
      }
      // Driver-side operators (local scans, command results) are not in task updates; Spark
      // resets a plan's metrics when an action starts, so the live value is this execution's.
      long live = m.value();
      return live > 0 ? live : null;
    }

    @Override
    public boolean reported(SQLMetric m) {
      return exec != null && tracker.reported(exec, m.id());
    }

    @Override
    public String whyMissing(SQLMetric m) {
      if (exec != null && tracker.reported(exec, m.id())) {
        return ExecutionMetrics.AMBIGUOUS;
      }
      if (failed) {
        return "no task of it completed: the action failed first";
      }
      return "not run in this execution: no task reported it (its stage was skipped, e.g. shuffle"
          + " output reused from an earlier action)";
    }
  };

  /**
   * How the writer thread finds this Delta write's commit: the table's DeltaLog (held by the
   * plan) or its path, or for a table the plan only names, its location in the session catalog.
   */
  private static DeltaCommits.Pending deltaPending(QueryExecution qe, Relations.Rel out,
      long startMs, long endMs) {
    org.apache.hadoop.conf.Configuration conf = qe.sparkSession().sparkContext()
        .hadoopConfiguration();
    Long known = null;
    DeltaCommits.Locator table;
    if (out.deltaLog != null) {
      org.apache.hadoop.fs.Path path = DeltaCommits.dataPath(out.deltaLog);
      known = DeltaCommits.knownVersion(out.deltaLog);
      table = () -> path;
    } else if (out.deltaPath != null) {
      table = () -> out.deltaPath;
    } else if (out.v1Table != null) {
      org.apache.spark.sql.catalyst.catalog.SessionCatalog catalog =
          qe.sparkSession().sessionState().catalog();
      org.apache.spark.sql.catalyst.TableIdentifier id = out.v1Table;
      table = () -> new org.apache.hadoop.fs.Path(catalog.getTableRawMetadata(id).location());
    } else {
      table = () -> null;
    }
    return new DeltaCommits.Pending(table, known, conf, startMs, endMs, out.deltaCommand);
  }

  /** One warning per reason, naming the operators whose rows are unknown for it. */
  private void warnUnknownOperators(List<Operators.Op> ops) {
    Map<String, List<Integer>> byReason = new LinkedHashMap<>();
    for (Operators.Op op : ops) {
      if (op.rowsOut == null && op.rowsUnknown != null) {
        byReason.computeIfAbsent(op.rowsUnknown, r -> new ArrayList<>()).add(op.id);
      }
    }
    for (Map.Entry<String, List<Integer>> e : byReason.entrySet()) {
      warnings.add("rows unknown for operators " + e.getValue() + ": " + e.getKey());
    }
  }

  /**
   * Column lineage of what the step wrote (the query under a write command) or returned (the
   * action's plan); empty for a command that computes nothing from inputs (DDL, SHOW, ...).
   */
  private List<Map<String, Object>> columnLineage(LogicalPlan analyzed, Relations.Rel out,
      boolean microBatch) {
    if (analyzed == null) {
      return null;  // the analyzed plan's own warning says why
    }
    if (microBatch) {
      warnings.add("column_lineage: not recorded for a streaming micro-batch");
      return null;
    }
    LogicalPlan query;
    if (out != null) {
      if (out.query == null) {
        warnings.add("column_lineage: not recorded for " + analyzed.nodeName()
            + " (its query is not part of the plan)");
        return null;
      }
      query = out.query;
    } else {
      query = analyzed instanceof org.apache.spark.sql.catalyst.plans.logical.Command
          ? null : analyzed;
    }
    ColumnLineage.Result lineage = ColumnLineage.of(query, redactor);
    warnings.addAll(lineage.warnings);
    return lineage.entries;
  }

  private List<Map<String, Object>> inputs(LogicalPlan analyzed, PlanCache cache,
      List<InputIdentity.Scan> scans) {
    List<Relations.Rel> rels = cache.inputs;
    if (rels == null && analyzed != null) {
      rels = attempt("inputs", () -> Relations.inputs(analyzed, redactor));
      if (rels != null && PlanCache.reusable(rels)) {
        cache.inputs = rels;
      }
    }
    List<Map<String, Object>> out = new ArrayList<>();
    if (rels != null) {
      for (Relations.Rel r : rels) {
        Map<String, Object> m = r.asInput();
        InputIdentity.Pending identity = scans == null ? null
            : attempt("input files", () -> InputIdentity.pending(r, scans));
        if (identity != null) {
          m.put(InputIdentity.PENDING, identity);  // resolved on the writer thread
        }
        out.add(m);
      }
    }
    return out;
  }

  /** At most {@code max} operators (pre-order keeps the top of the plan); the rest is marked. */
  private List<Map<String, Object>> operators(List<Operators.Op> ops, int max) {
    List<Map<String, Object>> out = new ArrayList<>(Math.min(ops.size(), max));
    for (Operators.Op op : ops) {
      if (out.size() >= max) {
        warnings.add("operators: " + (ops.size() - max) + " of " + ops.size()
            + " operators left out (spark.pipetrace.max_operators=" + max + ")");
        break;
      }
      Map<String, Object> m = new LinkedHashMap<>();
      m.put("id", op.id);
      m.put("parent_id", op.parentId);
      m.put("name", op.name);
      m.put("description", op.description);
      m.put("rows_out", op.rowsOut);
      m.put("rows_in", op.rowsIn);
      m.put("metrics", op.metrics);
      m.put("source", op.source);
      out.add(m);
    }
    return out;
  }

  /**
   * The error as "class: message", at most 4,000 chars. Cut before it is redacted: a 10 MB
   * message (a UDF that raised with a whole payload) costs microseconds, not seconds, on
   * Spark's shared listener thread.
   */
  private String errorText(Throwable error) {
    Redactor.Capped c = redactor.describe(error, error.getClass().getName(), MAX_ERROR);
    if (!c.cut()) {
      return c.text();
    }
    warnings.add("error: message of " + String.valueOf(error.getMessage()).length()
        + " chars cut to " + MAX_ERROR);
    return c.text() + "...[truncated]";
  }

  /**
   * The schema as DDL, capped like a plan text: a column named after a 10 MB literal (a
   * select of raise_error or lit() without alias) would otherwise be redacted whole.
   */
  private PlanText.Text outputSchema(String ddl, int max) {
    PlanText.Text t = PlanText.capped(ddl, max, redactor);
    if (t.truncated) {
      warnings.add("output_schema: " + ddl.length() + " chars cut to " + max
          + " (spark.pipetrace.plan_max_chars)");
    }
    return t;
  }

  public Redactor redactor() {
    return redactor;
  }

  private interface Part<T> {
    T get() throws Exception;
  }

  /** Run one part of the capture; a failure costs that part, never the step. */
  private <T> T attempt(String part, Part<T> f) {
    try {
      return f.get();
    } catch (Throwable t) {
      warnings.add(part + ": "
          + redactor.describe(t, t.getClass().getSimpleName(), MAX_WARNING).text());
      Counters.listenerErrors.incrementAndGet();
      return null;
    }
  }
}
