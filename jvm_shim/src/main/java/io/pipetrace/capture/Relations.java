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

import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.ResolvedIdentifier;
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
    public String path;    // storage location: qualified URI (redacted), where known
    String scanKey;        // inputs: matches the file scans reading it (InputIdentity), unredacted
    LogicalPlan query;  // output: the plan whose rows are written
    Object deltaLog;    // output: the Delta table's DeltaLog, where the plan holds it
    org.apache.hadoop.fs.Path deltaPath;  // output: the Delta table's path, where known
    TableIdentifier v1Table;  // output: a session-catalog table whose location is looked up
    boolean deltaCommand;     // output: Delta DML or maintenance (rows are its commit metrics)

    String key() {
      return kind + "|" + name + "|" + format;
    }

    /** This input's entry of a step's {@code inputs}, as the listener spools it. */
    java.util.Map<String, Object> asInput() {
      java.util.Map<String, Object> m = new LinkedHashMap<>();
      m.put("kind", kind);
      m.put("name", name);
      m.put("format", format);
      m.put("version", version);
      m.put("path", path);
      return m;
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
      if (DeltaCommits.isDelta(p)) {
        // Delta's DML keeps what it reads outside children(): MERGE's source and target.
        for (String accessor : new String[] {"source", "target"}) {
          Object read = DeltaCommits.call(p, accessor);
          if (read instanceof LogicalPlan && !next.contains(read)) {
            next.add((LogicalPlan) read);
          }
        }
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

  static Rel input(LogicalPlan p, Redactor redactor) {
    if (p instanceof LogicalRelation) {
      LogicalRelation lr = (LogicalRelation) p;
      Rel r = new Rel();
      BaseRelation relation = lr.relation();
      r.format = format(relation);
      if (lr.catalogTable().isDefined()) {
        r.kind = "table";
        r.name = tableName(lr.catalogTable().get().identifier());
        r.path = location(lr.catalogTable().get(), redactor);
        if (relation instanceof HadoopFsRelation) {
          r.scanKey = tableKey(lr.catalogTable().get().identifier());
        }
      } else if (relation instanceof HadoopFsRelation) {
        r.kind = "path";
        r.name = redactor.redact(join(((HadoopFsRelation) relation).location().rootPaths()));
        r.path = r.name;
        r.scanKey = pathKey(((HadoopFsRelation) relation).location().rootPaths());
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
      r.format = v2Format(v2.table());
      r.version = deltaVersion(v2.table());
      r.path = v2Location(v2.table(), redactor);
      return r;
    }
    if (p instanceof HiveTableRelation) {
      Rel r = new Rel();
      r.kind = "table";
      r.name = tableName(((HiveTableRelation) p).tableMeta().identifier());
      r.path = location(((HiveTableRelation) p).tableMeta(), redactor);
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
      // createDataFrame(list), or parallelize(...).toDF(): an RDD over the driver's own data
      r.kind = fromDriverData(((LogicalRDD) p).rdd()) ? "local" : "rdd";
      return r;
    }
    // A CTE reference reads its definition, which is walked on its own: not an input.
    if (p.children().isEmpty() && p.innerChildren().isEmpty()
        && !(p instanceof org.apache.spark.sql.catalyst.plans.logical.CTERelationRef)
        && p.nodeName().toLowerCase().contains("relation")) {
      return other(p);
    }
    return null;
  }

  /**
   * Whether every root of the RDD's lineage is data the driver handed over (parallelize: a
   * ParallelCollectionRDD), as PySpark's createDataFrame from a list or pandas frame builds
   * it. Walks already-built dependencies only; never computes a partition.
   */
  static boolean fromDriverData(org.apache.spark.rdd.RDD<?> rdd) {
    java.util.ArrayDeque<org.apache.spark.rdd.RDD<?>> todo = new java.util.ArrayDeque<>();
    todo.push(rdd);
    int seen = 0;
    boolean any = false;
    while (!todo.isEmpty()) {
      if (++seen > 200) {
        return false;  // a lineage this long is not a list handed to createDataFrame
      }
      org.apache.spark.rdd.RDD<?> r = todo.pop();
      scala.collection.Iterator<org.apache.spark.Dependency<?>> deps =
          r.dependencies().iterator();
      if (!deps.hasNext()) {
        if (!(r instanceof org.apache.spark.rdd.ParallelCollectionRDD)) {
          return false;
        }
        any = true;
      }
      while (deps.hasNext()) {
        todo.push(deps.next().rdd());
      }
    }
    return any;
  }

  private static Rel safeOutput(LogicalPlan p) {
    try {
      return output(p, Redactor.NONE);
    } catch (Throwable t) {
      return null;
    }
  }

  static Rel other(LogicalPlan p) {
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
      r.path = redactor.redact(c.outputPath().toString());
      r.format = formatName(c.fileFormat());
      r.mode = c.mode().name();
      r.query = c.query();
    } else if (plan instanceof SaveIntoDataSourceCommand) {
      SaveIntoDataSourceCommand c = (SaveIntoDataSourceCommand) plan;
      scala.Option<String> path = c.options().get("path");
      String qualified = path.isDefined() ? qualifiedPath(path.get()) : null;
      r.kind = path.isDefined() ? "path" : "other";
      r.name = path.isDefined() ? redactor.redact(qualified) : null;
      r.path = r.name;
      if (r.name == null) {
        scala.Option<String> dbtable = c.options().get("dbtable");
        r.name = dbtable.isDefined() ? redactor.redact(dbtable.get()) : null;
      }
      r.format = formatName(c.dataSource());
      r.mode = c.mode().name();
      r.query = c.query();
      if ("delta".equals(r.format) && qualified != null) {
        r.deltaPath = new org.apache.hadoop.fs.Path(qualified);
      }
    } else if (plan instanceof CreateDataSourceTableAsSelectCommand) {
      CreateDataSourceTableAsSelectCommand c = (CreateDataSourceTableAsSelectCommand) plan;
      r.kind = "table";
      r.name = tableName(c.table().identifier());
      r.v1Table = c.table().identifier();
      r.path = location(c.table(), redactor);
      r.format = c.table().provider().isDefined() ? c.table().provider().get() : null;
      r.mode = c.mode().name();
      r.query = c.query();
    } else if (SparkCompat.get().saveAsV1Table(plan) != null) {
      SparkCompat.SaveAsTable c = SparkCompat.get().saveAsV1Table(plan);  // Spark 4.1+
      r.kind = "table";
      r.name = tableName(c.table.identifier());
      r.v1Table = c.table.identifier();
      r.path = location(c.table, redactor);
      r.format = c.table.provider().isDefined() ? c.table.provider().get() : null;
      r.mode = c.mode.name();
      r.query = c.query;
    } else if (plan instanceof InsertIntoDataSourceCommand) {
      InsertIntoDataSourceCommand c = (InsertIntoDataSourceCommand) plan;
      LogicalRelation lr = c.logicalRelation();
      table(r, lr.catalogTable(), redactor.redact(lr.relation().toString()));
      r.path = lr.catalogTable().isDefined() ? location(lr.catalogTable().get(), redactor) : null;
      r.format = format(lr.relation());
      r.mode = c.overwrite() ? "Overwrite" : "Append";
      r.query = c.query();
    } else if (plan instanceof V2WriteCommand) {
      V2WriteCommand c = (V2WriteCommand) plan;
      r.kind = "table";
      r.name = redactor.redact(c.table().name());
      String cls = plan.nodeName();
      r.mode = cls.startsWith("Overwrite") ? "Overwrite" : "Append";
      if (c.table() instanceof DataSourceV2Relation) {
        DataSourceV2Relation v2 = (DataSourceV2Relation) c.table();
        r.format = v2Format(v2.table());
        if (v2.identifier().isDefined()) {
          r.name = redactor.redact(qualified(v2.catalog().isDefined()
              ? v2.catalog().get().name() : null, v2.identifier().get().toString()));
        }
        r.deltaLog = DeltaCommits.deltaLog(v2.table(), 0);
        r.path = v2Location(v2.table(), redactor);
      }
      r.query = c.query();
    } else if (plan instanceof CreateTableAsSelect) {
      CreateTableAsSelect c = (CreateTableAsSelect) plan;
      createAs(r, c.name(), c.tableSpec(), redactor);
      r.mode = c.ignoreIfExists() ? "Ignore" : "ErrorIfExists";
      r.query = c.query();
    } else if (plan instanceof ReplaceTableAsSelect) {
      ReplaceTableAsSelect c = (ReplaceTableAsSelect) plan;
      createAs(r, c.name(), c.tableSpec(), redactor);
      r.mode = "Overwrite";
      r.query = c.query();
    } else if (DeltaCommits.isDelta(plan) && plan.nodeName().endsWith("Command")) {
      return deltaCommand(plan, redactor);
    } else {
      return null;
    }
    return r;
  }

  /**
   * A Delta command (UPDATE, DELETE, MERGE, OPTIMIZE, RESTORE, VACUUM, ...): its target table,
   * found through the DeltaLog it holds; null when it has none (e.g. DESCRIBE HISTORY reads).
   */
  private static Rel deltaCommand(LogicalPlan plan, Redactor redactor) {
    String n = plan.nodeName();
    if (n.startsWith("Describe") || n.startsWith("Show")) {
      return null;
    }
    Object log = DeltaCommits.deltaLog(plan, 0);
    for (scala.collection.Iterator<LogicalPlan> it = plan.children().iterator();
        log == null && it.hasNext(); ) {
      log = DeltaCommits.deltaLog(it.next(), 0);
    }
    if (log == null) {
      return null;
    }
    Rel r = new Rel();
    r.format = "delta";
    r.deltaLog = log;
    r.deltaCommand = true;
    org.apache.hadoop.fs.Path dataPath = DeltaCommits.dataPath(log);
    r.path = dataPath == null ? null : redactor.redact(dataPath.toString());
    CatalogTable catalogTable = catalogTable(plan, 0);
    if (catalogTable != null) {
      r.kind = "table";
      r.name = tableName(catalogTable.identifier());
    } else {
      Object table = null;
      for (scala.collection.Iterator<LogicalPlan> it = plan.children().iterator();
          table == null && it.hasNext(); ) {
        table = tableOf(it.next());
      }
      if (table != null) {
        r.kind = "table";
        r.name = table.toString();
      } else {
        r.kind = "path";
        org.apache.hadoop.fs.Path path = DeltaCommits.dataPath(log);
        r.name = path == null ? null : redactor.redact(path.toString());
      }
    }
    return r;
  }

  /** The catalog table a Delta command (or the DeltaTableV2 it holds) targets, or null. */
  private static CatalogTable catalogTable(Object o, int depth) {
    if (o == null || depth > 2) {
      return null;
    }
    Object t = DeltaCommits.call(o, "catalogTable");
    if (t instanceof scala.Option && ((scala.Option<?>) t).isDefined()
        && ((scala.Option<?>) t).get() instanceof CatalogTable) {
      return (CatalogTable) ((scala.Option<?>) t).get();
    }
    for (String accessor : new String[] {"sourceTable", "table", "target"}) {
      Object next = DeltaCommits.call(o, accessor);
      CatalogTable found = next == null || next == o ? null : catalogTable(next, depth + 1);
      if (found != null) {
        return found;
      }
    }
    return null;
  }

  /** "catalog.namespace.name" of a ResolvedTable child (OPTIMIZE t, VACUUM t), else null. */
  private static String tableOf(LogicalPlan child) {
    Object catalog = DeltaCommits.call(child, "catalog");
    Object ident = DeltaCommits.call(child, "identifier");
    if (catalog instanceof org.apache.spark.sql.connector.catalog.CatalogPlugin
        && ident instanceof org.apache.spark.sql.connector.catalog.Identifier) {
      org.apache.spark.sql.connector.catalog.Identifier id =
          (org.apache.spark.sql.connector.catalog.Identifier) ident;
      if (id.namespace().length == 0 && id.name().contains("/")) {
        return null;  // delta.`/path`: a path, not a name
      }
      return qualified(((org.apache.spark.sql.connector.catalog.CatalogPlugin) catalog).name(),
          id.toString());
    }
    return null;
  }

  private static void createAs(Rel r, LogicalPlan name,
      org.apache.spark.sql.catalyst.plans.logical.TableSpecBase spec, Redactor redactor) {
    r.kind = "table";
    r.path = spec.location().isDefined()
        ? redactor.redact(qualifiedPath(spec.location().get())) : null;
    if (name instanceof ResolvedIdentifier) {
      ResolvedIdentifier id = (ResolvedIdentifier) name;
      r.name = qualified(id.catalog().name(), id.identifier().toString());
      if ("spark_catalog".equals(id.catalog().name()) && id.identifier().namespace().length == 1) {
        r.v1Table = new TableIdentifier(id.identifier().name(),
            scala.Option.apply(id.identifier().namespace()[0]), scala.Option.apply("spark_catalog"));
      }
    } else {
      r.name = name.toString();
    }
    r.format = spec.provider().isDefined() ? spec.provider().get() : null;
  }

  private static void table(Rel r, scala.Option<CatalogTable> table, String path) {
    if (table.isDefined()) {
      r.kind = "table";
      r.name = tableName(table.get().identifier());
    } else {
      r.kind = "path";
      r.name = path;
    }
  }

  static String format(BaseRelation relation) {
    if (relation instanceof HadoopFsRelation) {
      if (DeltaCommits.isDelta(((HadoopFsRelation) relation).location())) {
        return "delta";  // Delta's files are parquet; the table is Delta
      }
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

  /**
   * One name per table for a write naming a table without its database ({@code saveAsTable("t")},
   * {@code CREATE TABLE t AS ...}): Spark keeps "t" in the plan and resolves it against the
   * session's current database, read here at capture (in memory, no catalog call), so the write
   * carries "spark_catalog.default.t" like a later read of the table.
   */
  static void qualifyTable(Rel out, org.apache.spark.sql.catalyst.catalog.SessionCatalog catalog) {
    if (out == null || out.v1Table == null || out.v1Table.database().isDefined()) {
      return;
    }
    out.v1Table = new TableIdentifier(out.v1Table.table(),
        scala.Option.apply(catalog.getCurrentDatabase()), scala.Option.apply("spark_catalog"));
    out.name = tableName(out.v1Table);
  }

  /** How InputIdentity matches a catalog table's scans to the input. */
  static String tableKey(TableIdentifier id) {
    return "table|" + tableName(id);
  }

  /** How InputIdentity matches a path's scans to the input (unredacted: never stored). */
  static String pathKey(scala.collection.Seq<org.apache.hadoop.fs.Path> rootPaths) {
    return "path|" + join(rootPaths);
  }

  /** A catalog table's storage location as a qualified URI (redacted), or null. */
  static String location(CatalogTable table, Redactor redactor) {
    scala.Option<java.net.URI> uri = table.storage().locationUri();
    return uri.isDefined()
        ? redactor.redact(qualifiedPath(new org.apache.hadoop.fs.Path(uri.get()).toString()))
        : null;
  }

  /** A V2 table's "location" property as a qualified URI (redacted), or null. */
  private static String v2Location(org.apache.spark.sql.connector.catalog.Table table,
      Redactor redactor) {
    String location = table.properties() == null ? null
        : table.properties().get(org.apache.spark.sql.connector.catalog.TableCatalog.PROP_LOCATION);
    return location == null ? null : redactor.redact(qualifiedPath(location));
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

  /**
   * One name per table: "catalog.schema.table", the session catalog's tables included
   * ("spark_catalog.default.summary" whether the code wrote "summary" or "default.summary").
   */
  static String qualified(String catalog, String ident) {
    return (catalog == null ? "spark_catalog" : catalog) + "." + ident;
  }

  static String tableName(TableIdentifier id) {
    String catalog = id.catalog().isDefined() ? id.catalog().get() : "spark_catalog";
    return id.database().isDefined() ? catalog + "." + id.database().get() + "." + id.table()
        : id.unquotedString();
  }

  /** A data source path as Spark resolves it ("/data/x" -> "file:/data/x" on a local FS). */
  static String qualifiedPath(String path) {
    try {
      org.apache.hadoop.fs.Path p = new org.apache.hadoop.fs.Path(path);
      if (p.toUri().getScheme() != null) {
        return p.toString();  // "file:///data/x/" and "file:/data/x" are one path
      }
      scala.Option<org.apache.spark.sql.SparkSession> session =
          org.apache.spark.sql.SparkSession.getDefaultSession();
      org.apache.spark.SparkContext sc = session.isDefined() ? session.get().sparkContext() : null;
      java.net.URI fs = sc == null ? java.net.URI.create("file:///")
          : org.apache.hadoop.fs.FileSystem.getDefaultUri(sc.hadoopConfiguration());
      org.apache.hadoop.fs.Path cwd = new org.apache.hadoop.fs.Path(
          new java.io.File(System.getProperty("user.dir")).toURI());
      return p.makeQualified(fs, cwd).toString();
    } catch (Throwable t) {
      return path;
    }
  }

  /** Format of a V2 table: "delta" for Delta's, else the class name without "Table". */
  private static String v2Format(Object table) {
    if (DeltaCommits.isDelta(table)) {
      return "delta";
    }
    return table.getClass().getSimpleName().replace("Table", "").toLowerCase();
  }

  /**
   * True when every source of {@code plan} is a Delta log (checkpoint and commit files read by
   * Delta's own log replay), i.e. Delta's internal work, not the user's action.
   */
  static boolean readsOnlyDeltaLog(LogicalPlan plan) {
    List<Boolean> found = new ArrayList<>();
    plan.foreach(new scala.runtime.AbstractFunction1<LogicalPlan, scala.runtime.BoxedUnit>() {
      @Override
      public scala.runtime.BoxedUnit apply(LogicalPlan p) {
        if (p.children().isEmpty()) {
          found.add(p instanceof LogicalRelation
              && ((LogicalRelation) p).relation() instanceof HadoopFsRelation
              && "DeltaLogFileIndex".equals(((HadoopFsRelation) ((LogicalRelation) p).relation())
                  .location().getClass().getSimpleName()));
        }
        return scala.runtime.BoxedUnit.UNIT;
      }
    });
    return !found.isEmpty() && !found.contains(false);
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
