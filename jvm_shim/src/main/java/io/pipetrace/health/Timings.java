package io.pipetrace.health;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What capture costs on Spark's listener thread: count, total and max of a callback's time,
 * plus a ring of the last samples for percentiles. Reported by {@code Bridge.status()} so the
 * benchmarks (and users) can see the per-step cost without a profiler.
 *
 * <p>Cheap on purpose: one {@code System.nanoTime()} pair per callback and an uncontended
 * lock (only the listener thread records; status readers copy the ring).
 */
public final class Timings {
  private static final int RING = 8192;   // last samples kept for p50/p99

  private final long[] ring = new long[RING];
  private long count;
  private long totalNs;
  private long maxNs;

  public synchronized void record(long ns) {
    ring[(int) (count % RING)] = ns;
    count++;
    totalNs += ns;
    maxNs = Math.max(maxNs, ns);
  }

  /** {count, total_ms, p50_ms, p99_ms, max_ms}; percentiles over the last RING samples. */
  public synchronized Map<String, Object> snapshot() {
    int n = (int) Math.min(count, RING);
    long[] sorted = Arrays.copyOf(ring, n);
    Arrays.sort(sorted);
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("count", count);
    m.put("total_ms", totalNs / 1e6);
    m.put("p50_ms", n == 0 ? 0.0 : sorted[(int) Math.min(n - 1, Math.floor(0.50 * n))] / 1e6);
    m.put("p99_ms", n == 0 ? 0.0 : sorted[(int) Math.min(n - 1, Math.floor(0.99 * n))] / 1e6);
    m.put("max_ms", maxNs / 1e6);
    return m;
  }
}
