package io.pipetrace.sink;

import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;

import org.apache.spark.sql.SparkSession;

/** Sessions pipetrace itself uses (e.g. to write its table): their actions are never steps. */
public final class Internal {
  private static final Map<SparkSession, Boolean> SESSIONS =
      Collections.synchronizedMap(new WeakHashMap<>());

  private Internal() {}

  static void mark(SparkSession session) {
    SESSIONS.put(session, Boolean.TRUE);
  }

  public static boolean isInternal(SparkSession session) {
    return SESSIONS.containsKey(session);
  }

  // Set while pipetrace builds its own session: listeners Spark creates for it from
  // spark.sql.queryExecutionListeners stay off instead of opening a run of their own.
  private static final ThreadLocal<Boolean> CREATING = ThreadLocal.withInitial(() -> false);

  /** Build a session with conf-registered pipetrace listeners off, and mark it internal. */
  static <T extends SparkSession> T create(java.util.function.Supplier<T> build) {
    CREATING.set(true);
    try {
      T session = build.get();
      mark(session);
      return session;
    } finally {
      CREATING.set(false);
    }
  }

  /**
   * A new session on {@code parent}'s context (same catalog and Delta / Unity Catalog setup,
   * none of the user's temp views or settings), marked internal.
   */
  public static SparkSession newSession(SparkSession parent) {
    return create(() -> {
      SparkSession s = parent.newSession();
      s.sessionState().listenerManager();  // built now, while conf listeners stay off
      return s;
    });
  }

  public static boolean isCreating() {
    return CREATING.get();
  }
}
