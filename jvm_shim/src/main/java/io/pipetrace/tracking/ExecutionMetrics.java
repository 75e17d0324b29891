package io.pipetrace.tracking;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The SQL metric values of one execution, counted so that every operator's rows are counted once.
 *
 * <p>Spark sums a metric's task updates over everything that ran the operator, and some plans
 * run an operator more than once within one execution: a global sort samples its input (a whole
 * extra job over the stage below the range exchange) before running it for real; a failed stage
 * re-runs the partitions it lost; a speculative copy of a task may finish too. Summing all
 * updates doubles such operators. Here each task's updates are kept per stage and partition:
 *
 * <ul>
 *   <li>within a stage, a partition counts once, whichever attempt finished it first (retries of
 *       a stage keep its stage id; speculative copies share the partition);
 *   <li>across stages, an operator updated by two stages over the same partitions was re-run by
 *       the later one (range sampling, then the real run): the later stage's values replace the
 *       earlier's. Stages over disjoint partitions add up (take() scans partition 0, then 1-4).
 *       Any other overlap is left unknown rather than guessed.
 * </ul>
 *
 * <p>Only successful tasks count: a failed or killed task reports no SQL metric values.
 * Driver-side updates (write statistics, broadcast sizes) are set once by Spark and kept as is.
 * Not thread-safe: the owning {@link ExecutionTracker} synchronizes.
 */
public final class ExecutionMetrics {
  /** Why a metric has no value (for capture_warnings). */
  public static final String AMBIGUOUS =
      "re-run by several stages over overlapping partitions; the rows of one run cannot be told apart";

  private final Map<Integer, BitSet> donePartitions = new LinkedHashMap<>();
  private final Map<Long, Map<Integer, Long>> perStage = new HashMap<>();
  private final Map<Long, Long> driver = new HashMap<>();
  // Metrics some task reported as 0. Kept apart from values: a task registers every metric its
  // serialized plan holds, so a reduce task reports the map side's shuffle-write metrics as 0
  // although it never ran that side; only a non-zero update says where an operator ran.
  private final java.util.Set<Long> zeros = new java.util.HashSet<>();

  /**
   * Whether a finished task is the first to finish its partition in its stage; only then are
   * its metric updates added (with {@link #add}).
   */
  boolean firstSuccess(int stageId, int partitionId) {
    BitSet done = donePartitions.computeIfAbsent(stageId, s -> new BitSet());
    if (done.get(partitionId)) {
      return false;
    }
    done.set(partitionId);
    return true;
  }

  void add(int stageId, long accumulatorId, long update) {
    if (update == 0) {
      zeros.add(accumulatorId);
      return;
    }
    perStage.computeIfAbsent(accumulatorId, a -> new LinkedHashMap<>(2))
        .merge(stageId, update, Long::sum);
  }

  void setDriver(long accumulatorId, long value) {
    driver.put(accumulatorId, value);
  }

  /** Whether any task or the driver reported this metric in this execution. */
  boolean reported(long accumulatorId) {
    return driver.containsKey(accumulatorId) || perStage.containsKey(accumulatorId)
        || zeros.contains(accumulatorId);
  }

  /**
   * The metric's value in this execution, each partition of each operator run counted once;
   * null when nothing reported it or when re-runs overlap in a way that cannot be resolved.
   */
  Long value(long accumulatorId) {
    Long d = driver.get(accumulatorId);
    if (d != null) {
      return d;
    }
    Map<Integer, Long> stages = perStage.get(accumulatorId);
    if (stages == null) {
      return zeros.contains(accumulatorId) ? 0L : null;
    }
    if (stages.size() == 1) {
      return stages.values().iterator().next();
    }
    // Stages in the order their first task finished: a re-run always finishes after the run it
    // repeats (sampling completes before the map stage that needs its bounds starts).
    List<Integer> kept = new ArrayList<>();
    for (Integer stage : stages.keySet()) {
      BitSet parts = donePartitions.get(stage);
      List<Integer> overlapping = new ArrayList<>();
      boolean coversAll = true;
      boolean covered = false;
      for (Integer k : kept) {
        BitSet other = donePartitions.get(k);
        if (other.intersects(parts)) {
          overlapping.add(k);
          BitSet missing = (BitSet) other.clone();
          missing.andNot(parts);
          coversAll &= missing.isEmpty();
          BitSet extra = (BitSet) parts.clone();
          extra.andNot(other);
          covered |= extra.isEmpty();
        }
      }
      if (overlapping.isEmpty()) {
        kept.add(stage);
      } else if (coversAll) {
        kept.removeAll(overlapping);  // a full re-run: the later run replaces the earlier
        kept.add(stage);
      } else if (!covered) {
        return null;                  // partly new, partly repeated: cannot tell which rows
      }
      // else: a re-run of a subset of partitions already counted; ignore it
    }
    long sum = 0;
    for (Integer k : kept) {
      sum += stages.get(k);
    }
    return sum;
  }

  /** True when {@link #value} is null although tasks reported the metric. */
  boolean ambiguous(long accumulatorId) {
    return perStage.containsKey(accumulatorId) && !driver.containsKey(accumulatorId)
        && value(accumulatorId) == null;
  }
}
