package io.pipetrace;

import org.apache.spark.sql.execution.SparkPlan;

/**
 * Fault injection for tests: makes the capture of one kind of plan node throw, the way a node
 * class pipetrace does not know (a Databricks-only or newer Spark node) may throw when read.
 * Off unless the JVM system property {@code pipetrace.faults.fail_node} names a node (e.g.
 * {@code Filter}); never a Spark or pipetrace setting, so users cannot turn it on by accident.
 */
final class Faults {
  static final String FAIL_NODE = "pipetrace.faults.fail_node";

  private Faults() {}

  /** The node name to fail on, or null (read once per step). */
  static String nodeToFail() {
    String name = System.getProperty(FAIL_NODE);
    return name == null || name.isEmpty() ? null : name;
  }

  static void maybeFail(String nodeName, SparkPlan plan) {
    if (nodeName != null && nodeName.equals(plan.nodeName())) {
      throw new IllegalStateException("injected fault: cannot read plan node " + nodeName);
    }
  }
}
