package io.pipetrace.health;

import org.apache.spark.sql.execution.SparkPlan;

/**
 * Fault injection for tests, off unless a JVM system property turns it on; never a Spark or
 * pipetrace setting, so users cannot turn it on by accident.
 *
 * <ul>
 *   <li>{@code pipetrace.faults.fail_node=Filter}: the capture of that plan node throws, the way
 *       a node class pipetrace does not know (a Databricks-only or newer Spark node) may.
 *   <li>{@code pipetrace.faults.pause_sink=<stage>:<file>}: Spark's writer (SparkSink) creates
 *       {@code <file>} when it reaches {@code <stage>} ({@code before-commit}: the batch is read
 *       and the table ready, Delta's write not started; {@code after-commit}: Delta committed,
 *       the spool segments not yet deleted) and waits there (at most 5 minutes) for the test to
 *       kill the process with SIGKILL: a crash at that exact point, deterministically.
 *   <li>{@code pipetrace.faults.hold_listener}: the listener waits (at most a minute) before
 *       handling a step while the property is set: the user's thread runs ahead of Spark's
 *       listener thread, as it does under load, deterministically.
 * </ul>
 */
public final class Faults {
  static final String FAIL_NODE = "pipetrace.faults.fail_node";
  static final String HOLD_LISTENER = "pipetrace.faults.hold_listener";
  static final String PAUSE_SINK = "pipetrace.faults.pause_sink";
  private static final long MAX_PAUSE_MS = 300_000;
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

  /** Signal and wait at {@code stage} of a Spark-writer commit when the pause switch names it. */
  public static void maybePauseSink(String stage) {
    String value = System.getProperty(PAUSE_SINK);
    if (value == null || !value.startsWith(stage + ":")) {
      return;
    }
    try {
      java.nio.file.Files.writeString(java.nio.file.Path.of(value.substring(stage.length() + 1)),
          stage);
      Thread.sleep(MAX_PAUSE_MS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }
}
