package io.pipetrace.capture;

import io.pipetrace.config.Version;
import io.pipetrace.redact.Redactor;
import io.pipetrace.spool.Run;

import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import com.fasterxml.jackson.databind.JsonNode;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.QueryExecution;

/**
 * One Spark ML fit (or a transform that ran Spark jobs) as a step, from what
 * python/pipetrace/ml.py reports through {@link io.pipetrace.Bridge#mlStep}: Spark posts no ML
 * event for a PySpark estimator (MLEvents' FitStart/FitEnd come only from the Scala Pipeline
 * and PipelineModel, which PySpark's Pipeline does not use), so Python says what was fitted
 * and the JVM adds what the training DataFrame's plan tells: its inputs and its plan. The row
 * then goes the way of every step (redaction, seq, hash chain) on pipetrace's writer thread.
 */
public final class MlStep {
  /**
   * Prefix of the Spark job tag that names the ML step an action runs inside: the tag is
   * {@code pipetrace-ml-step-<event id>}, added on the calling thread for the call's duration.
   * A job tag, not a local property, because SQL execution start events carry the thread's
   * job tags (Spark 3.5 and 4.x) and Spark ML's {@code rdd} executions run no job.
   */
  public static final String TAG_PREFIX = "pipetrace-ml-step-";

  // On the analyzed plan a fitted model's (or any transformer's) transform returned: names it
  // in the steps of the actions that later read that DataFrame (context 'ml_model'). Spark
  // copies node tags when it rewrites a plan.
  private static final org.apache.spark.sql.catalyst.trees.TreeNodeTag<String> MODEL_TAG =
      new org.apache.spark.sql.catalyst.trees.TreeNodeTag<>("pipetrace.ml_model");

  /** Name the transformer ("class uid") whose transform produced the DataFrame of {@code qe}. */
  public static void markOutput(QueryExecution qe, String model) {
    qe.analyzed().setTagValue(MODEL_TAG, model);
  }

  /** The transformers whose output this plan reads ("class uid", comma-separated), or null. */
  public static String modelsIn(LogicalPlan plan) {
    java.util.Set<String> names = new java.util.LinkedHashSet<>();
    plan.foreach(node -> {
      scala.Option<String> v = node.getTagValue(MODEL_TAG);
      if (v.isDefined()) {
        names.add(v.get());
      }
      return null;
    });
    return names.isEmpty() ? null : String.join(", ", names);
  }

  /** The ML step id among these job tags, or null. */
  public static String stepOf(scala.collection.Iterator<String> tags) {
    while (tags.hasNext()) {
      String t = tags.next();
      if (t != null && t.startsWith(TAG_PREFIX)) {
        return t.substring(TAG_PREFIX.length());
      }
    }
    return null;
  }

  /** The ML step id in a job's {@code spark.job.tags} property (comma-separated), or null. */
  public static String stepOf(String jobTags) {
    if (jobTags == null) {
      return null;
    }
    for (String t : jobTags.split(",")) {
      if (t.startsWith(TAG_PREFIX)) {
        return t.substring(TAG_PREFIX.length());
      }
    }
    return null;
  }

  private static final int MAX_ERROR = 4_000;
  private static final String[] STAGE_TEXT = {"class", "uid"};
  private static final String[] STAGE_LISTS = {"explicit_params", "input_columns",
      "output_columns"};

  private MlStep() {}

  /**
   * The row of the ML step {@code p} (the payload ml.py sends) on the training DataFrame
   * {@code qe} (null when Python could not give it), with {@code jobs} Spark jobs seen inside.
   */
  public static Map<String, Object> row(Run run, Redactor redactor, QueryExecution qe,
      JsonNode p, int jobs) {
    List<String> warnings = new ArrayList<>();
    p.path("warnings").forEach(w -> warnings.add(w.asText()));
    SparkContext sc = qe == null ? SparkContext.getOrCreate() : qe.sparkSession().sparkContext();
    LogicalPlan analyzed = null;
    List<Map<String, Object>> inputs = new ArrayList<>();
    PlanText.Text logical = null;
    String fingerprint = null;
    if (qe != null) {
      try {
        analyzed = qe.analyzed();
        for (Relations.Rel r : Relations.inputs(analyzed, redactor)) {
          inputs.add(r.asInput());
        }
        if (!inputs.isEmpty()) {
          // Files are identified from a scan that ran; a fit's scans are Spark ML's own
          // actions, the steps whose parent_event_id is this step's event_id.
          warnings.add("inputs' file identity: not recorded on the fit step; see the steps"
              + " whose parent_event_id is this step's event_id");
        }
        logical = PlanText.of(analyzed, run.settings.planMaxChars, redactor);
        fingerprint = PlanText.fingerprint(analyzed, redactor);
      } catch (Throwable t) {
        warnings.add("training data: " + redactor.describe(t, t.getClass().getSimpleName(),
            1_000).text());
      }
    } else {
      warnings.add("inputs unknown: the training data is not a DataFrame of this session");
    }
    long now = System.currentTimeMillis();
    Map<String, Object> row = new LinkedHashMap<>();
    row.put("schema_version", Version.SCHEMA);
    String id = p.path("event_id").asText();
    row.put("event_id", UUID.fromString(id).toString());  // a UUID, nothing else
    row.put("run_id", run.runId);
    row.put("captured_at", Instant.ofEpochMilli(now));
    row.put("started_at", Instant.ofEpochMilli(p.path("started_ms").asLong(now)));
    row.put("app_id", sc.applicationId());
    row.put("app_name", sc.appName());
    row.put("spark_version", sc.version());
    row.put("pipetrace_version", Version.PIPETRACE);
    row.put("user", sc.sparkUser());
    row.put("action", p.path("kind").asText());
    row.put("spark_func", p.path("spark_func").asText());
    boolean failed = p.hasNonNull("error");
    row.put("status", failed ? "FAILED" : "SUCCEEDED");
    if (failed) {
      Redactor.Capped c = redactor.redactCapped(p.path("error").asText(), MAX_ERROR);
      row.put("error", c.cut() ? c.text() + "...[truncated]" : c.text());
    }
    row.put("duration_ms", p.path("duration_ms").asLong());
    row.put("inputs", inputs);
    row.put("operators", List.of());
    if (logical != null && !logical.isEmpty()) {
      row.put("logical_plan", logical);  // the training DataFrame's plan
      row.put("plan_truncated", logical.truncated);
    }
    if (fingerprint != null) {
      row.put("plan_fingerprint", fingerprint);
    }
    if (p.hasNonNull("call_site")) {
      row.put("call_site", p.path("call_site").asText());
    }
    row.put("tags", run.settings.tags);
    row.put("ml", ml(p.path("ml"), jobs));
    row.put("capture_warnings", warnings);
    return row;
  }

  /** The ml column, from the payload's known keys only (anything else is not in the schema). */
  private static Map<String, Object> ml(JsonNode m, int jobs) {
    Map<String, Object> out = new LinkedHashMap<>();
    for (String k : new String[] {"estimator", "uid", "model", "model_uid"}) {
      out.put(k, m.hasNonNull(k) ? m.path(k).asText() : null);
    }
    out.put("input_columns", texts(m.path("input_columns")));
    List<Map<String, Object>> stages = new ArrayList<>();
    for (JsonNode s : m.path("stages")) {
      Map<String, Object> stage = new LinkedHashMap<>();
      stage.put("index", s.path("index").asInt());
      for (String k : STAGE_TEXT) {
        stage.put(k, s.hasNonNull(k) ? s.path(k).asText() : null);
      }
      Map<String, String> params = new LinkedHashMap<>();
      s.path("params").fields().forEachRemaining(e -> params.put(e.getKey(), e.getValue().asText()));
      stage.put("params", params);
      for (String k : STAGE_LISTS) {
        stage.put(k, texts(s.path(k)));
      }
      stages.add(stage);
    }
    out.put("stages", stages);
    out.put("spark_jobs", (long) jobs);
    Long rows = m.hasNonNull("training_rows") ? m.path("training_rows").asLong() : null;
    out.put("training_rows", rows);
    return out;
  }

  private static List<String> texts(JsonNode list) {
    List<String> out = new ArrayList<>();
    list.forEach(n -> out.add(n.asText()));
    return out;
  }
}
