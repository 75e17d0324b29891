package io.pipetrace.compat;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.UUID;

import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.trees.Origin;
import org.apache.spark.sql.catalyst.trees.TreeNode;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart;

/**
 * What differs between the Spark versions the shim runs on, behind one object chosen at runtime
 * from {@code SPARK_VERSION} (OpenLineage's factory-provider pattern).
 *
 * <p>Each jar is compiled against the lowest Spark of its line (spark35: 3.5, Scala 2.12;
 * spark4: 4.0, Scala 2.13), so javac proves the shared code uses only API that every Spark of
 * the line has. What a line's Spark lacks at compile time is in that line's subclass
 * ({@code jvm_shim/src/<line>/java}); what later minors of a line add is looked up here by
 * reflection, once, and is null/absent on a Spark without it. A Spark outside every line, or a
 * jar of another line, is refused by {@link #get()} before anything is registered.
 */
public abstract class SparkCompat {
  private static volatile SparkCompat instance;

  /** The compatibility layer of the running Spark; throws {@link UnsupportedSpark} if none. */
  public static SparkCompat get() {
    SparkCompat c = instance;
    if (c == null) {
      synchronized (SparkCompat.class) {
        c = instance;
        if (c == null) {
          c = forVersion(org.apache.spark.package$.MODULE$.SPARK_VERSION());
          instance = c;
        }
      }
    }
    return c;
  }

  /** The layer for {@code sparkVersion}, from the classes in this jar. */
  static SparkCompat forVersion(String sparkVersion) {
    String line = lineOf(sparkVersion);
    if (line == null) {
      throw new UnsupportedSpark("pipetrace supports Spark 3.5 (Scala 2.12) and Spark 4.x "
          + "(Scala 2.13); this is Spark " + sparkVersion + ". Run on a supported Spark "
          + "(Databricks Runtime 14.0 or newer), or leave pipetrace off.");
    }
    String cls = "io.pipetrace.compat." + (line.equals("spark35") ? "Spark35" : "Spark4");
    String jar = "pipetrace-shim-" + (line.equals("spark35") ? "spark35_2.12" : "spark4_2.13")
        + ".jar";
    SparkCompat compat;
    try {
      compat = (SparkCompat) Class.forName(cls).getDeclaredConstructor().newInstance();
    } catch (ReflectiveOperationException | LinkageError e) {
      throw new UnsupportedSpark("this pipetrace jar was built for another Spark line ("
          + builtFor() + "); this is Spark " + sparkVersion + ", which needs the " + jar
          + " from the same pipetrace wheel");
    }
    // Spark 3.5 also comes built for Scala 2.13 (e.g. a Databricks 16.4 image): the 2.12 jar's
    // calls would not link there, so refuse it now rather than fail on every event.
    String running = scala.util.Properties.versionNumberString();
    if (!running.startsWith(compat.scala() + ".")) {
      throw new UnsupportedSpark("this pipetrace jar (" + jar + ") is built for Scala "
          + compat.scala() + ", but this Spark " + sparkVersion + " runs Scala " + running
          + "; pipetrace ships no jar for that combination, leave pipetrace off here");
    }
    return compat;
  }

  /** "spark35" or "spark4" for a Spark version pipetrace supports, else null. */
  public static String lineOf(String sparkVersion) {
    String[] parts = sparkVersion == null ? new String[0] : sparkVersion.split("[.-]");
    if (parts.length < 2) {
      return null;
    }
    if (parts[0].equals("3") && parts[1].equals("5")) {
      return "spark35";
    }
    return parts[0].equals("4") ? "spark4" : null;
  }

  private static String builtFor() {
    Package p = SparkCompat.class.getPackage();
    String line = p == null ? null : p.getSpecificationTitle();
    return line == null ? "unknown" : line;
  }

  /** The line this layer serves: "spark35" or "spark4". */
  public abstract String line();

  /** The Scala binary version the line's Spark is built with: "2.12" or "2.13". */
  public abstract String scala();

  /**
   * The Python file:line an expression was built at ({@code Origin.pysparkErrorContext}, Spark
   * 4.0+), or null.
   */
  public abstract String pythonCallSite(Origin origin);

  /**
   * Write {@code plan}'s tree string through {@code append} (verbose, no suffix, no operator
   * ids, no output columns), {@code maxFields} fields per node. Spark 4.1 added a sixth
   * parameter (printOutputColumns); both forms are found once, here.
   */
  public void treeString(TreeNode<?> plan, scala.Function1<String, scala.runtime.BoxedUnit> append,
      int maxFields) {
    try {
      if (TREE_STRING_6 != null) {
        TREE_STRING_6.invoke(plan, append, true, false, maxFields, false, false);
      } else if (TREE_STRING_5 != null) {
        TREE_STRING_5.invoke(plan, append, true, false, maxFields, false);
      } else {
        throw new IllegalStateException("this Spark's TreeNode has no treeString(append, ...)");
      }
    } catch (RuntimeException | Error e) {
      throw e;  // the caller's own stop signal (a cap on the text) among them
    } catch (Throwable t) {
      throw new IllegalStateException(t);
    }
  }

  /**
   * The query id of a QueryExecution (Spark 4.2+: the same id is on its execution's start
   * event, which pairs a callback with its execution), or null on a Spark without it.
   */
  public UUID queryId(QueryExecution qe) {
    return (UUID) call(QE_QUERY_ID, qe);
  }

  /** The query id on an execution's start event (Spark 4.2+), or null. */
  public UUID queryId(SparkListenerSQLExecutionStart start) {
    scala.Option<?> id = (scala.Option<?>) call(START_QUERY_ID, start);
    return id != null && id.isDefined() ? (UUID) id.get() : null;
  }

  /** {@code saveAsTable}'s V1 command (SaveAsV1TableCommand, Spark 4.1+) as its parts, or null. */
  public SaveAsTable saveAsV1Table(LogicalPlan plan) {
    if (SAVE_AS_V1 == null || !SAVE_AS_V1.isInstance(plan)) {
      return null;
    }
    try {
      return new SaveAsTable((CatalogTable) SAVE_TABLE_DESC.invoke(plan),
          (SaveMode) SAVE_MODE.invoke(plan), (LogicalPlan) SAVE_QUERY.invoke(plan));
    } catch (Throwable t) {
      throw new IllegalStateException("pipetrace: cannot read " + plan.nodeName(), t);
    }
  }

  /** The parts of a saveAsTable command pipetrace records. */
  public static final class SaveAsTable {
    public final CatalogTable table;
    public final SaveMode mode;
    public final LogicalPlan query;

    SaveAsTable(CatalogTable table, SaveMode mode, LogicalPlan query) {
      this.table = table;
      this.mode = mode;
      this.query = query;
    }
  }

  private static final MethodHandles.Lookup LOOKUP = MethodHandles.publicLookup();
  private static final MethodHandle QE_QUERY_ID =
      method(QueryExecution.class, "queryId", MethodType.methodType(UUID.class));
  private static final MethodHandle START_QUERY_ID = method(SparkListenerSQLExecutionStart.class,
      "queryId", MethodType.methodType(scala.Option.class));
  private static final MethodHandle TREE_STRING_6 = method(TreeNode.class, "treeString",
      MethodType.methodType(void.class, scala.Function1.class, boolean.class, boolean.class,
          int.class, boolean.class, boolean.class));
  // Spark 3.5 and 4.0 (4.1 added a sixth argument and dropped this one): by handle, so that
  // the shared code compiles against any Spark of either line, as `pip install .` does.
  private static final MethodHandle TREE_STRING_5 = method(TreeNode.class, "treeString",
      MethodType.methodType(void.class, scala.Function1.class, boolean.class, boolean.class,
          int.class, boolean.class));
  private static final Class<?> SAVE_AS_V1 =
      classOrNull("org.apache.spark.sql.execution.command.SaveAsV1TableCommand");
  private static final MethodHandle SAVE_TABLE_DESC =
      method(SAVE_AS_V1, "tableDesc", MethodType.methodType(CatalogTable.class));
  private static final MethodHandle SAVE_MODE =
      method(SAVE_AS_V1, "mode", MethodType.methodType(SaveMode.class));
  private static final MethodHandle SAVE_QUERY =
      method(SAVE_AS_V1, "query", MethodType.methodType(LogicalPlan.class));

  private static Object call(MethodHandle h, Object target) {
    if (h == null) {
      return null;
    }
    try {
      return h.invoke(target);
    } catch (Throwable t) {
      return null;
    }
  }

  private static MethodHandle method(Class<?> owner, String name, MethodType type) {
    if (owner == null) {
      return null;
    }
    try {
      return LOOKUP.findVirtual(owner, name, type);
    } catch (ReflectiveOperationException e) {
      return null;  // not in this Spark
    }
  }

  private static Class<?> classOrNull(String name) {
    try {
      return Class.forName(name, false, SparkCompat.class.getClassLoader());
    } catch (ClassNotFoundException | LinkageError e) {
      return null;
    }
  }

  /** Thrown when the running Spark is not one this jar supports; the message says what to do. */
  public static final class UnsupportedSpark extends RuntimeException {
    private static final long serialVersionUID = 1L;

    UnsupportedSpark(String message) {
      super(message);
    }
  }
}
