package io.pipetrace.health;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Logging that never floods: each kind of problem is logged once per JVM, then only counted. */
public final class Log {
  private static final Logger LOG = LoggerFactory.getLogger("io.pipetrace");
  private static final Set<String> SEEN = ConcurrentHashMap.newKeySet();

  private Log() {}

  public static void warnOnce(String kind, String message) {
    if (SEEN.add(kind)) {
      LOG.warn(message);
    }
  }

  public static void warnOnce(String kind, String message, Throwable t) {
    if (SEEN.add(kind)) {
      LOG.warn(message, t);
    }
  }

  public static void info(String message) {
    LOG.info(message);
  }
}
