package io.pipetrace.health;

import org.apache.spark.sql.execution.SparkPlan;

/**
 * Fault injection for tests, off unless a JVM system property turns it on; never a Spark or
 * pipetrace setting, so users cannot turn it on by accident.
 *
 * <ul>
 *   <li>{@code pipetrace.faults.fail_node=Filter}: the capture of that plan node throws, the way
 *       a node class pipetrace does not know (a Databricks-only or newer Spark node) may.
 *   <li>{@code pipetrace.faults.hold_listener}: the listener waits (at most a minute) before
 *       handling a step while the property is set: the user's thread runs ahead of Spark's
 *       listener thread, as it does under load, deterministically.
 * </ul>
 */
public final class Faults {
  static final String FAIL_NODE = "pipetrace.faults.fail_node";
  static final String HOLD_LISTENER = "pipetrace.faults.hold_listener";
  private static final long MAX_HOLD_MS = 60_000;

  private Faults() {}

  /** The node name to fail on, or null (read once per step). */
  public static String nodeToFail() {
    String name = System.getProperty(FAIL_NODE);
    return name == null || name.isEmpty() ? null : name;
  }

  public static void maybeFail(String nodeName, SparkPlan plan) {
    if (nodeName != null && nodeName.equals(plan.nodeName())) {
      throw new IllegalStateException("injected fault: cannot read plan node " + nodeName);
    }
  }

  /** Wait while the hold switch is on (bounded). */
  public static void maybeHold() {
    long deadline = System.currentTimeMillis() + MAX_HOLD_MS;
    while (System.getProperty(HOLD_LISTENER) != null && System.currentTimeMillis() < deadline) {
      try {
        Thread.sleep(5);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      }
    }
  }
}
