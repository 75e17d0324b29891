package io.pipetrace.capture;

import io.pipetrace.compat.SparkCompat;
import io.pipetrace.redact.Redactor;

import java.lang.reflect.Method;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.HiveTableRelation;
import org.apache.spark.sql.catalyst.plans.logical.CreateTableAsSelect;
import org.apache.spark.sql.catalyst.plans.logical.LocalRelation;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Range;
import org.apache.spark.sql.catalyst.plans.logical.ReplaceTableAsSelect;
import org.apache.spark.sql.catalyst.plans.logical.V2WriteCommand;
import org.apache.spark.sql.execution.LogicalRDD;
import org.apache.spark.sql.execution.command.CreateDataSourceTableAsSelectCommand;
import org.apache.spark.sql.execution.datasources.HadoopFsRelation;
import org.apache.spark.sql.execution.datasources.InsertIntoDataSourceCommand;
import org.apache.spark.sql.execution.datasources.InsertIntoHadoopFsRelationCommand;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import org.apache.spark.sql.execution.datasources.SaveIntoDataSourceCommand;
import org.apache.spark.sql.execution.datasources.v2.DataSourceV2Relation;
import org.apache.spark.sql.sources.BaseRelation;
import org.apache.spark.sql.sources.DataSourceRegister;

/** What an action read (inputs) and wrote (output), from its analyzed logical plan. */
public final class Relations {
  private static final int MAX_NODES = 20_000;

  /** An input or output table/path. Null fields are unknown. */
  public static final class Rel {
    public String kind;
    public String name;
    public String format;
    Long version;   // inputs: Delta version read, where known
    public String mode;    // output: save mode
    LogicalPlan query;  // output: the plan whose rows are written

    String key() {
      return kind + "|" + name + "|" + format;
    }
  }

  private Relations() {}

  /** Distinct sources read by {@code plan}, in plan order. */
  static List<Rel> inputs(LogicalPlan plan, Redactor redactor) {
    Map<String, Rel> found = new LinkedHashMap<>();
    Deque<LogicalPlan> stack = new ArrayDeque<>();
    stack.push(plan);
    int budget = MAX_NODES;
    while (!stack.isEmpty() && budget-- > 0) {
      LogicalPlan p = stack.pop();
      Rel rel = null;
      try {
        rel = input(p, redactor);
      } catch (Throwable t) {
        rel = other(p);
      }
      if (rel != null) {
        found.putIfAbsent(rel.key(), rel);
        continue;
      }
      List<LogicalPlan> next = new ArrayList<>();
      Rel written = safeOutput(p);
      if (written != null && written.query != null) {
        // Commands keep their query outside children() (CTAS, saveAsTable, save).
        next.add(written.query);
      }
      addAll(next, p.children().iterator());
      addAll(next, p.innerChildren().iterator());
      addAll(next, p.subqueries().iterator());
      for (int i = next.size() - 1; i >= 0; i--) {
        stack.push(next.get(i));
      }
    }
    return new ArrayList<>(found.values());
  }

  private static void addAll(List<LogicalPlan> out, scala.collection.Iterator<?> it) {
    while (it.hasNext()) {
      Object o = it.next();
      if (o instanceof LogicalPlan) {
        out.add((LogicalPlan) o);
      }
    }
  }

  private static Rel input(LogicalPlan p, Redactor redactor) {
    if (p instanceof LogicalRelation) {
      LogicalRelation lr = (LogicalRelation) p;
      Rel r = new Rel();
      BaseRelation relation = lr.relation();
      r.format = format(relation);
      if (lr.catalogTable().isDefined()) {
        r.kind = "table";
        r.name = lr.catalogTable().get().identifier().unquotedString();
      } else if (relation instanceof HadoopFsRelation) {
        r.kind = "path";
        r.name = redactor.redact(join(((HadoopFsRelation) relation).location().rootPaths()));
      } else {
        r.kind = "other";
        r.name = redactor.redact(relation.toString());
      }
      if (relation instanceof HadoopFsRelation) {
        r.version = deltaVersion(((HadoopFsRelation) relation).location());
      }
      return r;
    }
    if (p instanceof DataSourceV2Relation) {
      DataSourceV2Relation v2 = (DataSourceV2Relation) p;
      Rel r = new Rel();
      r.kind = "table";
      r.name = redactor.redact(v2.identifier().isDefined()
          ? qualified(v2.catalog().isDefined() ? v2.catalog().get().name() : null,
              v2.identifier().get().toString())
          : v2.table().name());
      r.format = v2.table().getClass().getSimpleName().replace("Table", "").toLowerCase();
      r.version = deltaVersion(v2.table());
      return r;
    }
    if (p instanceof HiveTableRelation) {
      Rel r = new Rel();
      r.kind = "table";
      r.name = ((HiveTableRelation) p).tableMeta().identifier().unquotedString();
      r.format = "hive";
      return r;
    }
    if (p instanceof LocalRelation) {
      Rel r = new Rel();
      r.kind = "local";
      return r;
    }
    if (p instanceof Range) {
      Rel r = new Rel();
      Range range = (Range) p;
      r.kind = "range";
      r.name = "range(" + range.start() + ", " + range.end() + ", " + range.step() + ")";
      return r;
    }
    if (p instanceof LogicalRDD) {
      Rel r = new Rel();
      r.kind = "rdd";
      return r;
    }
    if (p.children().isEmpty() && p.innerChildren().isEmpty()
        && p.nodeName().toLowerCase().contains("relation")) {
      return other(p);
    }
    return null;
  }

  private static Rel safeOutput(LogicalPlan p) {
    try {
      return output(p, Redactor.NONE);
    } catch (Throwable t) {
      return null;
    }
  }

  private static Rel other(LogicalPlan p) {
    Rel r = new Rel();
    r.kind = "other";
    r.name = p.nodeName();
    return r;
  }

  /** The target of a write command, or null when {@code plan} writes nothing. */
  static Rel output(LogicalPlan plan, Redactor redactor) {
    Rel r = new Rel();
    if (plan instanceof InsertIntoHadoopFsRelationCommand) {
      InsertIntoHadoopFsRelationCommand c = (InsertIntoHadoopFsRelationCommand) plan;
      table(r, c.catalogTable(), redactor.redact(c.outputPath().toString()));
      r.format = formatName(c.fileFormat());
      r.mode = c.mode().name();
      r.query = c.query();
    } else if (plan instanceof SaveIntoDataSourceCommand) {
      SaveIntoDataSourceCommand c = (SaveIntoDataSourceCommand) plan;
      scala.Option<String> path = c.options().get("path");
      r.kind = path.isDefined() ? "path" : "other";
      r.name = path.isDefined() ? redactor.redact(path.get()) : null;
      if (r.name == null) {
        scala.Option<String> dbtable = c.options().get("dbtable");
        r.name = dbtable.isDefined() ? redactor.redact(dbtable.get()) : null;
      }
      r.format = formatName(c.dataSource());
      r.mode = c.mode().name();
      r.query = c.query();
    } else if (plan instanceof CreateDataSourceTableAsSelectCommand) {
      CreateDataSourceTableAsSelectCommand c = (CreateDataSourceTableAsSelectCommand) plan;
      r.kind = "table";
      r.name = c.table().identifier().unquotedString();
      r.format = c.table().provider().isDefined() ? c.table().provider().get() : null;
      r.mode = c.mode().name();
      r.query = c.query();
    } else if (SparkCompat.get().saveAsV1Table(plan) != null) {
      SparkCompat.SaveAsTable c = SparkCompat.get().saveAsV1Table(plan);  // Spark 4.1+
      r.kind = "table";
      r.name = c.table.identifier().unquotedString();
      r.format = c.table.provider().isDefined() ? c.table.provider().get() : null;
      r.mode = c.mode.name();
      r.query = c.query;
    } else if (plan instanceof InsertIntoDataSourceCommand) {
      InsertIntoDataSourceCommand c = (InsertIntoDataSourceCommand) plan;
      LogicalRelation lr = c.logicalRelation();
      table(r, lr.catalogTable(), redactor.redact(lr.relation().toString()));
      r.format = format(lr.relation());
      r.mode = c.overwrite() ? "Overwrite" : "Append";
      r.query = c.query();
    } else if (plan instanceof V2WriteCommand) {
      V2WriteCommand c = (V2WriteCommand) plan;
      r.kind = "table";
      r.name = redactor.redact(c.table().name());
      String cls = plan.nodeName();
      r.mode = cls.startsWith("Overwrite") ? "Overwrite" : "Append";
      r.format = c.table() instanceof DataSourceV2Relation
          ? ((DataSourceV2Relation) c.table()).table().getClass().getSimpleName()
              .replace("Table", "").toLowerCase() : null;
      r.query = c.query();
    } else if (plan instanceof CreateTableAsSelect) {
      CreateTableAsSelect c = (CreateTableAsSelect) plan;
      r.kind = "table";
      r.name = c.tableName().toString();
      r.mode = c.ignoreIfExists() ? "Ignore" : "ErrorIfExists";
      r.query = c.query();
    } else if (plan instanceof ReplaceTableAsSelect) {
      ReplaceTableAsSelect c = (ReplaceTableAsSelect) plan;
      r.kind = "table";
      r.name = c.tableName().toString();
      r.mode = "Overwrite";
      r.query = c.query();
    } else {
      return null;
    }
    return r;
  }

  private static void table(Rel r, scala.Option<CatalogTable> table, String path) {
    if (table.isDefined()) {
      r.kind = "table";
      r.name = table.get().identifier().unquotedString();
    } else {
      r.kind = "path";
      r.name = path;
    }
  }

  static String format(BaseRelation relation) {
    if (relation instanceof HadoopFsRelation) {
      return formatName(((HadoopFsRelation) relation).fileFormat());
    }
    return formatName(relation);
  }

  /** Short name of a data source (parquet, csv, jdbc, delta...) where it registers one. */
  public static String formatName(Object source) {
    if (source instanceof DataSourceRegister) {
      try {
        return ((DataSourceRegister) source).shortName();
      } catch (Throwable ignored) {
        // fall through
      }
    }
    String n = source.getClass().getSimpleName();
    n = n.replaceAll("(FileFormat|Relation|RelationProvider|DataSource|Source)\\$?$", "");
    if (n.startsWith("JDBC")) {
      return "jdbc";
    }
    return n.isEmpty() ? source.getClass().getName() : n.toLowerCase();
  }

  private static String join(scala.collection.Seq<org.apache.hadoop.fs.Path> paths) {
    StringBuilder sb = new StringBuilder();
    scala.collection.Iterator<org.apache.hadoop.fs.Path> it = paths.iterator();
    while (it.hasNext()) {
      if (sb.length() > 0) {
        sb.append(", ");
      }
      sb.append(it.next().toString());
    }
    return sb.toString();
  }

  private static String qualified(String catalog, String ident) {
    return catalog == null || "spark_catalog".equals(catalog) ? ident : catalog + "." + ident;
  }

  /**
   * Delta table version, by reflection because Delta's classes are not on our compile path:
   * TahoeFileIndex / DeltaTableV2 expose the snapshot they read.
   */
  static Long deltaVersion(Object o) {
    if (o == null || !o.getClass().getName().contains("delta")) {
      return null;
    }
    for (String chain : new String[] {"version", "tableVersion", "snapshotAtAnalysis.version",
        "initialSnapshot.version", "snapshot.version"}) {
      try {
        Object cur = o;
        for (String m : chain.split("\\.")) {
          Method method = cur.getClass().getMethod(m);
          cur = method.invoke(cur);
        }
        if (cur instanceof Number) {
          return ((Number) cur).longValue();
        }
      } catch (Throwable ignored) {
        // try the next accessor
      }
    }
    return null;
  }
}
