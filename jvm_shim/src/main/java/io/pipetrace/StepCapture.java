package io.pipetrace;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.catalyst.plans.logical.CommandResult;
import org.apache.spark.sql.catalyst.plans.logical.LocalRelation;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.CollectLimitExec;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.TakeOrderedAndProjectExec;
import org.apache.spark.sql.execution.aggregate.BaseAggregateExec;
import org.apache.spark.sql.execution.exchange.Exchange;
import org.apache.spark.sql.execution.metric.SQLMetric;

/** Turns one action (funcName, QueryExecution, outcome) into one step: a JSON line of the schema. */
final class StepCapture {
  private static final JsonFactory JSON = new JsonFactory();
  private static final int MAX_ERROR = 4_000;

  /** What a nested execution (e.g. the insert inside saveAsTable) adds to its root's step. */
  static final class Nested {
    final List<Operators.Op> operators;
    final Long rowsOut;
    final Relations.Rel output;

    Nested(List<Operators.Op> operators, Long rowsOut, Relations.Rel output) {
      this.operators = operators;
      this.rowsOut = rowsOut;
      this.output = output;
    }
  }

  /** Logical plan texts and fingerprint of one QueryExecution, as last captured. */
  private static final class Logical {
    final int max;
    final Redactor redactor;
    final PlanText.Text logical;
    final PlanText.Text optimized;
    final String fingerprint;

    Logical(int max, Redactor redactor, PlanText.Text logical, PlanText.Text optimized,
        String fingerprint) {
      this.max = max;
      this.redactor = redactor;
      this.logical = logical;
      this.optimized = optimized;
      this.fingerprint = fingerprint;
    }
  }

  // Weak keys: an entry lives as long as the user's DataFrame keeps its QueryExecution.
  // QueryExecution has identity equality; only the listener thread uses the map.
  private static final Map<QueryExecution, Logical> LOGICAL =
      java.util.Collections.synchronizedMap(new java.util.WeakHashMap<>());

  private final Run run;
  private final Redactor redactor;
  private final ExecutionTracker tracker;
  private final ExecutionTracker.Exec exec;
  private final List<String> warnings = new ArrayList<>();

  StepCapture(Run run, Redactor redactor, ExecutionTracker tracker, ExecutionTracker.Exec exec) {
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
  static boolean isCommandResultEcho(String funcName, QueryExecution qe,
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
  static String outputIds(LogicalPlan plan) {
    StringBuilder sb = new StringBuilder();
    scala.collection.Iterator<org.apache.spark.sql.catalyst.expressions.Attribute> it =
        plan.output().iterator();
    while (it.hasNext()) {
      sb.append(it.next().exprId().id()).append(',');
    }
    return sb.toString();
  }

  /** Operators and written rows of a nested execution, for its root step. */
  Nested nested(QueryExecution qe) {
    LogicalPlan analyzed = qe.analyzed();
    List<Operators.Op> ops = Operators.walk(qe.executedPlan(), this::metric, redactor, 0, null);
    return new Nested(ops, ops.isEmpty() ? null : ops.get(0).rowsOut,
        Relations.output(analyzed, redactor));
  }

  /** The step as one JSON line (no newline). Parts that fail are left null and listed in capture_warnings. */
  byte[] step(String funcName, QueryExecution qe, long durationNs, Throwable error) throws IOException {
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
    String description = exec == null ? null : exec.description;
    String action = Actions.normalize(funcName, description, output != null);
    SparkPlan executed = attempt("physical plan", qe::executedPlan);
    List<Operators.Op> ops = executed == null ? new ArrayList<>()
        : attempt("operators", () -> Operators.walk(executed, this::metric, redactor, 0, null));
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
    Long rows = error != null ? null
        : attempt("rows_out", () -> rowsOut(action, executed, out, nested));

    long now = System.currentTimeMillis();
    ByteArrayOutputStream buf = new ByteArrayOutputStream(4096);
    try (JsonGenerator g = JSON.createGenerator(buf)) {
      g.writeStartObject();
      g.writeNumberField("schema_version", Version.SCHEMA);
      g.writeStringField("event_id", UUID.randomUUID().toString());
      g.writeStringField("run_id", run.runId);
      g.writeNumberField("seq", run.seq.incrementAndGet());
      g.writeStringField("captured_at", Instant.ofEpochMilli(now).toString());
      if (exec != null) {
        g.writeStringField("started_at", Instant.ofEpochMilli(exec.startMs).toString());
        g.writeNumberField("execution_id", exec.id);
      }
      g.writeStringField("app_id", sc.applicationId());
      g.writeStringField("app_name", sc.appName());
      g.writeStringField("spark_version", sc.version());
      g.writeStringField("pipetrace_version", Version.PIPETRACE);
      g.writeStringField("user", sc.sparkUser());
      g.writeStringField("action", action);
      g.writeStringField("spark_func", funcName);
      g.writeStringField("status", error == null ? "SUCCEEDED" : "FAILED");
      if (error != null) {
        g.writeStringField("error", errorText(error));
      }
      long durationMs = durationNs >= 0 ? durationNs / 1_000_000
          : exec != null ? Math.max(0, now - exec.startMs) : -1;
      if (durationMs >= 0) {
        g.writeNumberField("duration_ms", durationMs);
      }
      writeInputs(g, analyzed);
      if (output != null) {
        g.writeObjectFieldStart("output");
        g.writeStringField("kind", output.kind);
        g.writeStringField("name", output.name);
        g.writeStringField("format", output.format);
        g.writeStringField("mode", output.mode);
        g.writeEndObject();
      }
      String schema = attempt("output_schema", () -> (out != null && out.query != null
          ? out.query.schema() : analyzed.schema()).toDDL());
      g.writeStringField("output_schema", schema);
      if (rows != null) {
        g.writeNumberField("rows_out", rows);
      }
      writeOperators(g, ops);
      boolean truncated = false;
      int max = run.settings.planMaxChars;
      // Logical texts and fingerprint never change for one QueryExecution: a DataFrame
      // collected again reuses them (on a 300-column plan they cost ~100 ms per step).
      Logical cached = LOGICAL.get(qe);
      if (cached == null || cached.max != max || cached.redactor != redactor) {
        cached = new Logical(max, redactor,
            attempt("logical_plan", () -> PlanText.of(analyzed, max, redactor)),
            attempt("optimized_plan", () -> PlanText.of(qe.optimizedPlan(), max, redactor)),
            analyzed == null ? null : PlanText.fingerprint(analyzed));
        LOGICAL.put(qe, cached);
      }
      PlanText.Text logical = cached.logical;
      PlanText.Text optimized = cached.optimized;
      PlanText.Text physical = attempt("physical_plan", () -> PlanText.of(executed, max, redactor));
      for (Object[] kv : new Object[][] {{"logical_plan", logical}, {"optimized_plan", optimized},
          {"physical_plan", physical}}) {
        PlanText.Text t = (PlanText.Text) kv[1];
        if (t != null && t.text != null) {
          g.writeStringField((String) kv[0], t.text);
          truncated |= t.truncated;
        }
      }
      g.writeBooleanField("plan_truncated", truncated);
      if (cached.fingerprint != null) {
        g.writeStringField("plan_fingerprint", cached.fingerprint);
      }
      String[] py = Actions.pythonCallSite(description);
      if (py != null) {
        g.writeStringField("call_site", redactor.redact(py[1]));
      }
      g.writeObjectFieldStart("tags");
      for (Map.Entry<String, String> t : run.settings.tags.entrySet()) {
        g.writeStringField(t.getKey(), t.getValue());
      }
      g.writeEndObject();
      g.writeArrayFieldStart("capture_warnings");
      for (String w : warnings) {
        g.writeString(w);
      }
      g.writeEndArray();
      g.writeEndObject();
    }
    return buf.toByteArray();
  }

  private Long metric(SQLMetric m) {
    Long v = exec == null ? null : tracker.metric(exec, m.id());
    if (v != null) {
      return v;
    }
    // Driver-side metrics (local scans, command results) are not in task updates.
    long live = m.value();
    return live > 0 ? live : null;
  }

  /** Rows the action returned, counted, or wrote. */
  private Long rowsOut(String action, SparkPlan executed, Relations.Rel output,
      List<Nested> nested) {
    if (executed == null) {
      return null;
    }
    SparkPlan root = Operators.unwrap(executed);
    if (output != null) {
      Long written = numOutputRows(root);
      if (written == null) {
        for (Nested n : nested) {
          if (n.rowsOut != null) {
            return n.rowsOut;
          }
        }
      }
      return written;
    }
    if ("count".equals(action)) {
      // count() is an aggregate over its input: the counted rows are what feeds the partial agg.
      SparkPlan p = root;
      for (int guard = 0; guard < 50 && p != null; guard++) {
        if ((p instanceof BaseAggregateExec || p instanceof Exchange) && !p.children().isEmpty()) {
          p = Operators.unwrap(p.children().head());
        } else {
          return rowsOf(p);
        }
      }
      return rowsOf(root);
    }
    if (root instanceof CollectLimitExec) {
      CollectLimitExec limit = (CollectLimitExec) root;
      Long child = rowsOf(Operators.unwrap(limit.child()));
      return child == null ? null : Math.max(0, Math.min(limit.limit(), child - limit.offset()));
    }
    if (root instanceof TakeOrderedAndProjectExec) {
      TakeOrderedAndProjectExec top = (TakeOrderedAndProjectExec) root;
      Long child = rowsOf(Operators.unwrap(top.child()));
      return child == null ? null : Math.min(top.limit(), child);
    }
    return rowsOf(root);
  }

  /**
   * Rows produced by {@code plan}: its numOutputRows, or, for operators Spark doesn't count
   * (Project, Sort, Window...: they keep the row count), that of their single child.
   */
  private Long rowsOf(SparkPlan plan) {
    SparkPlan p = plan;
    for (int guard = 0; guard < 100 && p != null; guard++) {
      Long rows = numOutputRows(p);
      if (rows != null || p.children().size() != 1) {
        return rows;
      }
      p = Operators.unwrap(p.children().head());
    }
    return null;
  }

  private Long numOutputRows(SparkPlan p) {
    scala.Option<SQLMetric> m = p.metrics().get("numOutputRows");
    if (!m.isDefined()) {
      return null;
    }
    Long v = metric(m.get());
    return v == null ? 0L : v;
  }

  private void writeInputs(JsonGenerator g, LogicalPlan analyzed) throws IOException {
    List<Relations.Rel> inputs = analyzed == null ? null
        : attempt("inputs", () -> Relations.inputs(analyzed, redactor));
    g.writeArrayFieldStart("inputs");
    if (inputs != null) {
      for (Relations.Rel r : inputs) {
        g.writeStartObject();
        g.writeStringField("kind", r.kind);
        g.writeStringField("name", r.name);
        g.writeStringField("format", r.format);
        if (r.version != null) {
          g.writeNumberField("version", r.version);
        }
        g.writeEndObject();
      }
    }
    g.writeEndArray();
  }

  private static void writeOperators(JsonGenerator g, List<Operators.Op> ops) throws IOException {
    g.writeArrayFieldStart("operators");
    for (Operators.Op op : ops) {
      g.writeStartObject();
      g.writeNumberField("id", op.id);
      if (op.parentId != null) {
        g.writeNumberField("parent_id", op.parentId);
      }
      g.writeStringField("name", op.name);
      g.writeStringField("description", op.description);
      if (op.rowsOut != null) {
        g.writeNumberField("rows_out", op.rowsOut);
      }
      g.writeObjectFieldStart("metrics");
      for (Map.Entry<String, Long> m : op.metrics.entrySet()) {
        g.writeNumberField(m.getKey(), m.getValue());
      }
      g.writeEndObject();
      if (op.source != null) {
        g.writeStringField("source", op.source);
      }
      g.writeEndObject();
    }
    g.writeEndArray();
  }

  private String errorText(Throwable error) {
    String msg = error.getClass().getName() + ": " + error.getMessage();
    msg = redactor.redact(msg);
    return msg.length() > MAX_ERROR ? msg.substring(0, MAX_ERROR) + "...[truncated]" : msg;
  }

  private interface Part<T> {
    T get() throws Exception;
  }

  /** Run one part of the capture; a failure costs that part, never the step. */
  private <T> T attempt(String part, Part<T> f) {
    try {
      return f.get();
    } catch (Throwable t) {
      warnings.add(part + ": " + redactor.redact(t.getClass().getSimpleName() + ": "
          + String.valueOf(t.getMessage())));
      Counters.listenerErrors.incrementAndGet();
      return null;
    }
  }
}
