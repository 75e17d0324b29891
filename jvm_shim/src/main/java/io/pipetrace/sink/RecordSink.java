package io.pipetrace.sink;

import io.pipetrace.config.Rules;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;

/**
 * Spark's writer for a run's row in pipeline_runs, beside the steps table
 * ({@link Rules#runsTable}). The row comes assembled (python/pipetrace/run_record.py, or
 * {@link #jvmOnlyRow} for a run no Python side records); this writes it exactly once: with
 * Delta, the write options {@code txnAppId = pipetrace-run/<run_id>} and {@code txnVersion =
 * the record's version}; other formats first look for the run's row with the same start.
 * Writes run in pipetrace's internal session: never steps.
 */
public final class RecordSink {
  private static final ObjectMapper JSON = new ObjectMapper();

  private RecordSink() {}

  /** Write {@code rowJson} (one pipeline_runs row) beside {@code stepsTarget}; rows written. */
  public static long commit(SparkSession session, String stepsTarget, String format,
      String rowJson, long version) throws Exception {
    SparkSession spark = Internal.newSession(session);
    String target = Rules.runsTable(stepsTarget);
    boolean isName = SparkSink.isTableName(target);
    boolean delta = "delta".equals(format);
    StructType schema = (StructType) DataType.fromJson(SparkSink.resource("/pipetrace/runs_schema.json"));
    ensureTable(spark, target, format, schema, isName);
    Dataset<Row> row = spark.read().schema(schema).option("mode", "FAILFAST")
        .json(spark.createDataset(List.of(rowJson), Encoders.STRING()));
    if (!delta && alreadyWritten(spark, target, format, schema, isName, row)) {
      return 0;
    }
    var writer = row.write().format(format).mode(SaveMode.Append).option("mergeSchema", "true")
        .option("txnAppId", "pipetrace-run/" + row.first().getAs("run_id"))
        .option("txnVersion", Long.toString(version));
    if (isName) {
      writer.saveAsTable(target);
    } else {
      writer.save(target);
    }
    return 1;
  }

  /**
   * The row of a run no Python side records (captured by configuration: an init script), from
   * the JVM's record.json: its end is the application's, its exit status unknown to the JVM
   * (rules.json conf_run_end, which python/pipetrace/run_record.py applies too).
   */
  public static String jvmOnlyRow(Path recordFile) throws Exception {
    @SuppressWarnings("unchecked")
    Map<String, Object> record = JSON.readValue(Files.readAllBytes(recordFile), Map.class);
    return jvmOnlyRow(record);
  }

  /** As {@link #jvmOnlyRow(Path)}, from the record's fields (the row as JSON). */
  public static String jvmOnlyRow(Map<String, Object> record) throws Exception {
    Map<String, Object> row = new java.util.LinkedHashMap<>(record);
    row.remove("record_version");
    row.put("status", io.pipetrace.config.Rules.CONF_RUN_STATUS);
    row.put("end_reason", io.pipetrace.config.Rules.CONF_RUN_END_REASON);
    return JSON.writeValueAsString(row);
  }

  private static boolean alreadyWritten(SparkSession spark, String target, String format,
      StructType schema, boolean isName, Dataset<Row> row) {
    Row r = row.first();
    Dataset<Row> existing;
    if (isName) {
      existing = spark.table(target);
    } else {
      if (!Rules.isRemote(target) && !Files.exists(Path.of(target.replaceFirst("^file:", "")))) {
        return false;
      }
      existing = spark.read().format(format).schema(schema).load(target);
    }
    return !existing.where(functions.col("run_id").equalTo(r.getAs("run_id"))
        .and(functions.col("started_at").eqNullSafe(r.getAs("started_at")))).isEmpty();
  }

  private static void ensureTable(SparkSession spark, String target, String format,
      StructType schema, boolean isName) throws Exception {
    boolean delta = "delta".equals(format);
    String name = isName ? target : delta ? "delta.`" + target.replace("`", "``") + "`" : null;
    if (name == null || (isName && spark.catalog().tableExists(target))) {
      return;
    }
    Map<?, ?> table = JSON.readValue(SparkSink.resource("/pipetrace/runs_table.json"), Map.class);
    StringBuilder props = new StringBuilder();
    for (Map.Entry<?, ?> e : ((Map<?, ?>) table.get("properties")).entrySet()) {
      String key = e.getKey().toString();
      String value = key.equals("delta.dataSkippingStatsColumns") && delta
          ? SparkSink.statsColumns(e.getValue().toString(), schema) : e.getValue().toString();
      props.append(props.length() == 0 ? "" : ", ").append(SparkSink.quote(key))
          .append(" = ").append(SparkSink.quote(value));
    }
    StructType columns = delta ? (StructType) SparkSink.withoutNestedNotNull(schema)
        : schema.asNullable();
    spark.sql("CREATE TABLE IF NOT EXISTS " + name + " (" + columns.toDDL() + ") USING " + format
        + " COMMENT " + SparkSink.quote(String.valueOf(table.get("description")))
        + " TBLPROPERTIES (" + props + ")");
  }
}
