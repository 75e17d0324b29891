package io.pipetrace.spool;

import io.pipetrace.capture.StepCapture;
import io.pipetrace.health.Counters;
import io.pipetrace.health.Log;
import io.pipetrace.redact.Redactor;

import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;

/**
 * pipetrace's own thread for the part of a step that needs no Spark object: the redaction of
 * the row (plan texts included), its hash chain, its JSON and the spool append. Only reading
 * plans and metrics, which can change once the listener returns, stays on Spark's shared
 * listener thread, where every millisecond delays every other listener.
 *
 * <p>One thread for the JVM; steps are written in the order they were captured. When the queue
 * is full the listener thread waits for room: a step is never dropped or reordered for lack of
 * it, and a run that outpaces the writer slows down to it, as it did when the listener wrote.
 */
final class StepWriter {
  private static final int CAPACITY = 256;
  private static final BlockingQueue<Task> QUEUE = new ArrayBlockingQueue<>(CAPACITY);
  private static Thread thread;

  private record Task(Run run, Map<String, Object> row, Redactor redactor) {}

  private StepWriter() {}

  /** Queue one captured row of {@code run}; waits only when the queue is full. */
  static void submit(Run run, Map<String, Object> row, Redactor redactor) {
    Task task = new Task(run, row, redactor);
    run.submitted();
    ensureRunning();
    try {
      QUEUE.put(task);
    } catch (InterruptedException e) {
      // Spark interrupts its listener thread when it stops: write this one here, at once.
      Thread.currentThread().interrupt();
      write(task);
    }
  }

  private static synchronized void ensureRunning() {
    if (thread != null && thread.isAlive()) {
      return;
    }
    thread = new Thread(StepWriter::loop, "pipetrace-step-writer");
    thread.setDaemon(true);
    thread.start();
  }

  private static void loop() {
    while (true) {
      Task task;
      try {
        task = QUEUE.take();
      } catch (InterruptedException e) {
        return;  // nobody interrupts this thread but the JVM going down
      }
      write(task);
    }
  }

  private static void write(Task task) {
    long started = System.nanoTime();
    try {
      // A Delta write's commit is read from its table's log here, off Spark's listener thread.
      io.pipetrace.capture.DeltaCommits.complete(task.row());
      // So are the input files' identity and a new table's location.
      io.pipetrace.capture.InputIdentity.complete(task.row(), task.redactor());
      io.pipetrace.capture.OutputPath.complete(task.row(), task.redactor());
      @SuppressWarnings("unchecked")
      Map<String, Object> redacted = (Map<String, Object>) task.redactor().redactAll(
          task.row(), StepCapture.ALREADY_REDACTED);
      task.run().appendStep(redacted);
    } catch (Throwable t) {
      task.run().dropped.incrementAndGet();
      task.run().dropReason = "a step could not be written: " + t;
      Counters.listenerErrors.incrementAndGet();
      Log.warnOnce("step-writer", "pipetrace: could not write a step of run "
          + task.run().runId + "; the job is not affected", t);
    } finally {
      task.run().writeTimings.record(System.nanoTime() - started);
      task.run().written();
    }
  }
}
