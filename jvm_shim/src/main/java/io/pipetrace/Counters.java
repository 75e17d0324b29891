package io.pipetrace;

import java.util.concurrent.atomic.AtomicLong;

/** JVM-wide health counters, reported by Bridge.status() and in the logs. */
final class Counters {
  static final AtomicLong listenerErrors = new AtomicLong();

  private Counters() {}
}
