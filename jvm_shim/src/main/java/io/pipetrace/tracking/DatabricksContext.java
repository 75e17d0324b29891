package io.pipetrace.tracking;

import io.pipetrace.health.Log;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;

import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.sql.SparkSession;

/**
 * Where an action ran on Databricks, for the {@code context} column: workspace, cluster,
 * notebook, job / run / task, user. Off Databricks none of the keys exist and the column is
 * null; nothing here ever throws into capture.
 *
 * <p>Cluster facts are Spark conf ({@code spark.databricks.clusterUsageTags.*}). Notebook and
 * job facts are thread-local properties of the thread that ran the action; the listener runs on
 * another thread, so they are read from the job-start events of the action's SQL execution
 * (Spark copies local properties into them), with Spark and session conf as fallbacks.
 * Key names are the commonly documented ones; several candidates per field, first found wins.
 */
public final class DatabricksContext extends SparkListener {
  /** Context field → candidate keys, in order. */
  static final Map<String, String[]> FIELDS = new LinkedHashMap<>();

  static {
    FIELDS.put("workspace_id", new String[] {"spark.databricks.clusterUsageTags.clusterOwnerOrgId",
        "spark.databricks.clusterUsageTags.orgId"});
    FIELDS.put("workspace_url", new String[] {"spark.databricks.workspaceUrl"});
    FIELDS.put("cluster_id", new String[] {"spark.databricks.clusterUsageTags.clusterId"});
    FIELDS.put("cluster_name", new String[] {"spark.databricks.clusterUsageTags.clusterName"});
    FIELDS.put("runtime_version", new String[] {"spark.databricks.clusterUsageTags.sparkVersion"});
    FIELDS.put("notebook_path", new String[] {"spark.databricks.notebook.path"});
    FIELDS.put("notebook_id", new String[] {"spark.databricks.notebook.id"});
    FIELDS.put("job_id", new String[] {"spark.databricks.job.id"});
    FIELDS.put("job_run_id", new String[] {"spark.databricks.job.runId"});
    FIELDS.put("job_parent_run_id", new String[] {"spark.databricks.job.parentRunId"});
    FIELDS.put("task_key", new String[] {"spark.databricks.task.taskKey",
        "spark.databricks.job.taskKey"});
    FIELDS.put("user", new String[] {"user", "spark.databricks.user"});
  }

  private static final int MAX_EXECUTIONS = 1024;
  private static DatabricksContext current;

  private final SparkContext sc;
  // SQL execution id → local properties of its first job (only the keys above).
  private final Map<Long, Map<String, String>> byExecution = Collections.synchronizedMap(
      new LinkedHashMap<Long, Map<String, String>>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, Map<String, String>> eldest) {
          return size() > MAX_EXECUTIONS;
        }
      });

  private DatabricksContext(SparkContext sc) {
    this.sc = sc;
  }

  /** Listen to job starts of this SparkContext (once); never throws. */
  public static synchronized void register(SparkContext sc) {
    try {
      if (current == null || current.sc != sc) {
        current = new DatabricksContext(sc);
        sc.addSparkListener(current);
      }
    } catch (Throwable t) {
      Log.warnOnce("context-register", "pipetrace: the Databricks context of steps is off", t);
    }
  }

  @Override
  public void onJobStart(SparkListenerJobStart job) {
    try {
      Properties props = job.properties();
      String id = props == null ? null : props.getProperty("spark.sql.execution.id");
      if (id == null) {
        return;
      }
      Map<String, String> found = new LinkedHashMap<>();
      for (String[] keys : FIELDS.values()) {
        for (String key : keys) {
          String v = props.getProperty(key);
          if (v != null && !v.isBlank()) {
            found.put(key, v);
          }
        }
      }
      byExecution.putIfAbsent(Long.parseLong(id), found);
    } catch (Throwable t) {
      Log.warnOnce("context-job", "pipetrace: could not read a job's Databricks context", t);
    }
  }

  /** The context of one step: field → value for the fields found; empty off Databricks. */
  public static Map<String, String> of(SparkSession session, long executionId) {
    Map<String, String> out = new LinkedHashMap<>();
    try {
      DatabricksContext ctx = current;
      Map<String, String> local = ctx == null ? null : ctx.byExecution.get(executionId);
      SparkConf conf = session.sparkContext().getConf();
      for (Map.Entry<String, String[]> field : FIELDS.entrySet()) {
        String value = null;
        for (String key : field.getValue()) {
          value = first(local == null ? null : local.get(key), session.sparkContext()
              .getLocalProperty(key), sessionConf(session, key), conf.get(key, null));
          if (value != null) {
            break;
          }
        }
        if (value != null) {
          out.put(field.getKey(), value);
        }
      }
    } catch (Throwable t) {
      Log.warnOnce("context-read", "pipetrace: could not read the Databricks context", t);
    }
    return out;
  }

  private static String sessionConf(SparkSession session, String key) {
    try {
      return session.conf().get(key, null);
    } catch (Throwable t) {
      return null;
    }
  }

  private static String first(String... values) {
    for (String v : values) {
      if (v != null && !v.isBlank()) {
        return v;
      }
    }
    return null;
  }
}
