package io.pipetrace;

import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;

import org.apache.spark.sql.SparkSession;

/** Sessions pipetrace itself uses (e.g. to write its table): their actions are never steps. */
final class Internal {
  private static final Map<SparkSession, Boolean> SESSIONS =
      Collections.synchronizedMap(new WeakHashMap<>());

  private Internal() {}

  static void mark(SparkSession session) {
    SESSIONS.put(session, Boolean.TRUE);
  }

  static boolean isInternal(SparkSession session) {
    return SESSIONS.containsKey(session);
  }
}
