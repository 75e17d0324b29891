package io.pipetrace.health;

import java.util.concurrent.atomic.AtomicLong;

/** JVM-wide health counters, reported by Bridge.status() and in the logs. */
public final class Counters {
  public static final AtomicLong listenerErrors = new AtomicLong();

  private Counters() {}
}
