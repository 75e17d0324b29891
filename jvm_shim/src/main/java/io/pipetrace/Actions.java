package io.pipetrace;

import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Normalized action names, from Spark's funcName and the call site Spark recorded. */
final class Actions {
  // PySpark call sites read "toPandas at /path/agent.py:12"; JVM ones end in ".java:0" or ".scala:N".
  private static final Pattern PY_CALL_SITE = Pattern.compile("^(\\w+) at (.+\\.py:\\d+)$");
  private static final Set<String> V2_WRITES = Set.of("append", "overwrite", "overwritePartitions",
      "create", "replace", "createOrReplace", "save", "insertInto", "saveAsTable", "merge");

  private Actions() {}

  /** The Python function and file:line of a PySpark call site, or null for JVM call sites. */
  static String[] pythonCallSite(String description) {
    if (description == null) {
      return null;
    }
    Matcher m = PY_CALL_SITE.matcher(description.trim());
    return m.matches() ? new String[] {m.group(1), m.group(2)} : null;
  }

  /**
   * The action's name from Spark's funcName, refined by the Python function in the call site
   * where Spark recorded one. PySpark sets no call site for actions run from other Python
   * threads; there a collect of a plan whose root is a limit is take() (PySpark's take(n),
   * first() and head(n) are limit(n).collect()), never a guess from another thread's call site.
   */
  static String normalize(String funcName, String description, boolean writes,
      boolean limitAtRoot) {
    String[] py = pythonCallSite(description);
    String pyFunc = py == null ? null : py[0];
    if (py == null && limitAtRoot && funcName.startsWith("collect")
        && !"collectAsArrowToPython".equals(funcName)) {
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
        return description != null && description.startsWith("showString") ? "show" : "take";
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
