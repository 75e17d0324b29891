package io.pipetrace.capture;

import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Normalized action names, from Spark's funcName and the call site Spark recorded. */
public final class Actions {
  // PySpark call sites read "toPandas at /path/agent.py:12"; pipetrace's wrappers
  // (python/pipetrace/hooks.py) name notebook cells as IPython does ("count at
  // <ipython-input-3-5f1>:2", "/tmp/ipykernel_7/2961.py:4"); JVM ones end in ".java:0" or
  // ".scala:N".
  private static final Pattern PY_CALL_SITE = Pattern.compile("^(\\w+) at (.+:\\d+)$");
  private static final Pattern JVM_FILE = Pattern.compile(".*\\.(java|scala):\\d+$");
  private static final Set<String> V2_WRITES = Set.of("append", "overwrite", "overwritePartitions",
      "create", "replace", "createOrReplace", "save", "insertInto", "saveAsTable", "merge");

  private Actions() {}

  /** The Python function and file:line of a PySpark call site, or null for JVM call sites. */
  public static String[] pythonCallSite(String description) {
    if (description == null) {
      return null;
    }
    Matcher m = PY_CALL_SITE.matcher(description.trim());
    if (!m.matches() || JVM_FILE.matcher(m.group(2)).matches()) {
      return null;
    }
    return new String[] {m.group(1), m.group(2)};
  }

  /**
   * The Python call site of this action, or null when Spark recorded none or one that cannot
   * be this action's. PySpark keeps one call-site depth counter for all Python threads, so an
   * action run while another thread is inside one gets no call site of its own and Spark
   * reports the thread's previous one: "take at x.py:9" on a collect() without a limit.
   */
  static String[] callSite(String funcName, String description, boolean limitAtRoot) {
    String[] py = pythonCallSite(description);
    if (py == null) {
      return null;
    }
    boolean consistent;
    switch (py[0]) {
      case "take":
      case "first":
      case "head":
        consistent = limitAtRoot && funcName.startsWith("collect");
        break;
      case "collect":
        consistent = funcName.startsWith("collect");
        break;
      case "toPandas":
      case "toArrow":
        consistent = funcName.startsWith("collect");
        break;
      case "count":
      case "isEmpty":
        consistent = py[0].equals(funcName);
        break;
      case "tail":
        consistent = funcName.startsWith("tail");
        break;
      case "show":
      case "showString":
        consistent = "head".equals(funcName);
        break;
      case "foreach":
      case "foreachPartition":
      case "toLocalIterator":
        // Run through RDDs: no SQL execution of their own; a nested one is not the action.
        consistent = false;
        break;
      default:  // writes, sql(): many funcNames
        consistent = true;
    }
    return consistent ? py : null;
  }

  /**
   * The action's name from Spark's funcName, refined by the Python function of a trusted call
   * site ({@link #callSite}). Without one, a collect of a plan whose root is a limit is take()
   * (PySpark's take(n), first() and head(n) are limit(n).collect()).
   */
  static String normalize(String funcName, String description, boolean writes,
      boolean limitAtRoot) {
    String[] py = callSite(funcName, description, limitAtRoot);
    String pyFunc = py == null ? null : py[0];
    if (limitAtRoot && funcName.startsWith("collect") && !"collectAsArrowToPython".equals(funcName)
        && !"toPandas".equals(pyFunc) && !"tail".equals(pyFunc) && !"toArrow".equals(pyFunc)) {
      return "take";
    }
    switch (funcName) {
      case "count":
        return "count";
      case "collectToPython":
      case "collect":
      case "collectResult":
      case "collectAsList":
      case "collectArrow":
        if ("take".equals(pyFunc) || "first".equals(pyFunc) || "head".equals(pyFunc)) {
          return "take";
        }
        if ("toPandas".equals(pyFunc) || "tail".equals(pyFunc) || "toArrow".equals(pyFunc)) {
          return pyFunc;
        }
        return "collect";
      case "collectAsArrowToPython":
        return "toArrow".equals(pyFunc) ? "toArrow" : "toPandas";
      case "head":
        return "show".equals(pyFunc)
            || description != null && description.startsWith("showString") ? "show" : "take";
      case "showString":
        return "show";
      case "isEmpty":
        return "isEmpty";
      case "tail":
      case "tailToPython":
        return "tail";
      case "command":
        return writes ? "write" : "command";
      default:
        return V2_WRITES.contains(funcName) ? "write" : funcName;
    }
  }
}
