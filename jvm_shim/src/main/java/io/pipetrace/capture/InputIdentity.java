package io.pipetrace.capture;

import io.pipetrace.redact.Redactor;

import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.PlanExpression;
import org.apache.spark.sql.execution.FileSourceScanExec;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.columnar.InMemoryTableScanExec;
import org.apache.spark.sql.execution.datasources.FileIndex;
import org.apache.spark.sql.execution.datasources.FileStatusWithMetadata;
import org.apache.spark.sql.execution.datasources.PartitionDirectory;
import org.apache.spark.sql.execution.datasources.PartitioningAwareFileIndex;
import org.apache.spark.sql.execution.exchange.ReusedExchangeExec;
import org.apache.spark.sql.execution.metric.SQLMetric;

/**
 * What files an action read from each file-based input (inputs.files, bytes, modified_max,
 * fingerprint): the files its scans selected after partition pruning, from the listing Spark
 * already holds.
 *
 * <p>On Spark's listener thread only references are taken: each V1 file scan of the executed
 * plan (through AQE stages, reused exchanges, subqueries and cached plans), its file index and
 * the scan's own "number of files read" metric of this execution. On pipetrace's writer thread,
 * {@link #complete} asks the index for the files matching the scan's partition filters, as the
 * scan did ({@code PartitioningAwareFileIndex.listFiles}: in memory, over the listing made when
 * the DataFrame was created; no file system call, no Spark job) and hashes them ({@link FileSet}).
 * When the scan's metric is known and differs from that selection, the identity is null.
 *
 * <p>Unknown (null, with the reason in capture_warnings): an index that would list on demand
 * (a partitioned catalog table read without a partition filter: CatalogFileIndex), dynamic
 * partition pruning or bucket pruning (the files are chosen at run time), a file input no scan
 * of the plan reads. Delta inputs and sources that are not files stay null without a warning:
 * a Delta input is identified by its version.
 */
public final class InputIdentity {
  /** Key of the pending identity in a captured input (removed before it is written). */
  public static final String PENDING = "__identity";
  private static final int MAX_NODES = 100_000;
  // Above this many files (summed over an input's scans) no fingerprint is computed: it would
  // hold that many paths in memory on the writer thread.
  static final long MAX_FILES = 2_000_000;
  private static final Set<String> FILE_FORMATS = Set.of("parquet", "csv", "json", "orc",
      "text", "avro", "binaryfile", "hive");

  private InputIdentity() {}

  /** One file scan of the executed plan, as references; nothing is listed or copied here. */
  static final class Scan {
    final String key;
    final FileSourceScanExec node;
    final Long filesRead;   // the scan's numFiles metric in this execution, or null
    final String unknown;   // why its files cannot be known, or null

    Scan(String key, FileSourceScanExec node, Long filesRead, String unknown) {
      this.key = key;
      this.node = node;
      this.filesRead = filesRead;
      this.unknown = unknown;
    }
  }

  /** An input's scans (resolved later), or the reason its files are unknown. */
  static final class Pending {
    final List<Scan> scans;
    final String name;
    final String unknown;

    Pending(List<Scan> scans, String name, String unknown) {
      this.scans = scans;
      this.name = name;
      this.unknown = unknown;
    }
  }

  /** The V1 file scans of {@code root}. Listener thread: walks the plan, reads one metric. */
  static List<Scan> scans(SparkPlan root, OperatorRows.Metrics metrics) {
    List<Scan> out = new ArrayList<>();
    if (root == null) {
      return out;
    }
    IdentityHashMap<SparkPlan, Boolean> seen = new IdentityHashMap<>();
    Deque<SparkPlan> stack = new ArrayDeque<>();
    stack.push(root);
    for (int budget = MAX_NODES; budget > 0 && !stack.isEmpty(); budget--) {
      SparkPlan p = Operators.unwrap(stack.pop());
      if (p == null || seen.put(p, Boolean.TRUE) != null) {
        continue;
      }
      if (p instanceof FileSourceScanExec) {
        out.add(scan((FileSourceScanExec) p, metrics));
      } else if (p instanceof ReusedExchangeExec) {
        stack.push(((ReusedExchangeExec) p).child());
      } else if (p instanceof InMemoryTableScanExec) {
        // A cached DataFrame: its rows came from the files its cached plan scanned.
        stack.push(((InMemoryTableScanExec) p).relation().cachedPlan());
      }
      push(stack, p.children().iterator());
      push(stack, p.subqueries().iterator());
    }
    return out;
  }

  private static void push(Deque<SparkPlan> stack, scala.collection.Iterator<?> it) {
    while (it.hasNext()) {
      Object o = it.next();
      if (o instanceof SparkPlan) {
        stack.push((SparkPlan) o);
      }
    }
  }

  private static Scan scan(FileSourceScanExec node, OperatorRows.Metrics metrics) {
    String key = node.tableIdentifier().isDefined()
        ? Relations.tableKey(node.tableIdentifier().get())
        : Relations.pathKey(node.relation().location().rootPaths());
    FileIndex index = node.relation().location();
    String unknown = null;
    if (!(index instanceof PartitioningAwareFileIndex)) {
      unknown = "its file index (" + index.getClass().getSimpleName() + ") lists the files "
          + "when asked and keeps no listing (a partitioned catalog table read without a "
          + "partition filter): only listing again could tell";
    } else if (hasRuntimeFilter(node.partitionFilters().iterator())) {
      unknown = "dynamic partition pruning chose its partitions at run time";
    } else if (node.optionalBucketSet().isDefined()) {
      unknown = "bucket pruning chose its files at run time";
    }
    Long filesRead = null;
    scala.Option<SQLMetric> m = node.metrics().get("numFiles");
    if (m.isDefined()) {
      filesRead = metrics.value(m.get());
    }
    return new Scan(key, node, filesRead, unknown);
  }

  private static boolean hasRuntimeFilter(scala.collection.Iterator<Expression> filters) {
    Deque<Expression> queue = new ArrayDeque<>();
    while (filters.hasNext()) {
      queue.add(filters.next());
    }
    for (int budget = 10_000; budget > 0 && !queue.isEmpty(); budget--) {
      Expression e = queue.poll();
      if (e instanceof PlanExpression) {
        return true;
      }
      scala.collection.Iterator<Expression> children = e.children().iterator();
      while (children.hasNext()) {
        queue.add(children.next());
      }
    }
    return false;
  }

  /**
   * The pending identity of one input, or null when it has none to record: Delta (its version
   * identifies it) and sources that are not files.
   */
  static Pending pending(Relations.Rel rel, List<Scan> scans) {
    if (rel.scanKey == null) {
      boolean fileBased = rel.format != null && FILE_FORMATS.contains(rel.format.toLowerCase());
      return fileBased ? new Pending(null, rel.name, "it is read through a "
          + (rel.format.equals("hive") ? "Hive table scan" : "V2 file source")
          + ", whose file selection pipetrace does not see") : null;
    }
    if ("delta".equalsIgnoreCase(rel.format)) {
      return null;
    }
    List<Scan> mine = new ArrayList<>();
    for (Scan s : scans) {
      if (rel.scanKey.equals(s.key)) {
        mine.add(s);
      }
    }
    if (mine.isEmpty()) {
      return new Pending(null, rel.name, "no file scan of it ran in this action's plan (answered"
          + " from metadata, or pruned away by the optimizer)");
    }
    return new Pending(mine, rel.name, null);
  }

  /**
   * Fill the identity of every input of a captured row, or add the reason it is unknown.
   * Writer thread. Never throws.
   */
  @SuppressWarnings("unchecked")
  public static void complete(Map<String, Object> row, Redactor redactor) {
    Object inputs = row.get("inputs");
    if (!(inputs instanceof List)) {
      return;
    }
    for (Object input : (List<Object>) inputs) {
      if (!(input instanceof Map)) {
        continue;
      }
      Map<String, Object> m = (Map<String, Object>) input;
      Object p = m.remove(PENDING);
      if (!(p instanceof Pending)) {
        continue;
      }
      Pending pending = (Pending) p;
      String unknown = pending.unknown;
      if (unknown == null) {
        try {
          unknown = fill(m, pending.scans, redactor);
        } catch (Throwable t) {
          unknown = "its files could not be read from Spark's listing: " + t;
        }
      }
      if (unknown != null) {
        warn(row, "input files unknown for " + pending.name + ": " + unknown);
      }
    }
  }

  private static String fill(Map<String, Object> m, List<Scan> scans, Redactor redactor)
      throws Exception {
    long total = 0;
    List<scala.collection.Seq<PartitionDirectory>> selections = new ArrayList<>();
    for (Scan s : scans) {
      if (s.unknown != null) {
        return "a scan of it: " + s.unknown;
      }
      FileSourceScanExec node = s.node;
      // What the scan asked its index for (no dynamic filter: ruled out above).
      scala.collection.Seq<PartitionDirectory> dirs =
          node.relation().location().listFiles(node.partitionFilters(), node.dataFilters());
      long count = 0;
      for (scala.collection.Iterator<PartitionDirectory> it = dirs.iterator(); it.hasNext(); ) {
        count += it.next().files().size();
      }
      if (s.filesRead != null && s.filesRead != count) {
        return "its scan read " + s.filesRead + " files but Spark's listing selects " + count
            + " now (the listing was refreshed since?)";
      }
      total += count;
      selections.add(dirs);
    }
    if (total > MAX_FILES) {
      return total + " files: more than the " + MAX_FILES + " pipetrace fingerprints";
    }
    FileSet set = new FileSet();
    for (scala.collection.Seq<PartitionDirectory> dirs : selections) {
      for (scala.collection.Iterator<PartitionDirectory> it = dirs.iterator(); it.hasNext(); ) {
        scala.collection.Iterator<FileStatusWithMetadata> files = it.next().files().iterator();
        while (files.hasNext()) {
          set.add(files.next().fileStatus());
        }
      }
    }
    m.put("files", set.files());
    m.put("bytes", set.bytes());
    Long newest = set.modifiedMax();
    m.put("modified_max", newest == null ? null : Instant.ofEpochMilli(newest));
    m.put("fingerprint", set.fingerprint(redactor));
    return null;
  }

  @SuppressWarnings("unchecked")
  private static void warn(Map<String, Object> row, String warning) {
    Object w = row.get("capture_warnings");
    List<Object> warnings = w instanceof List ? new ArrayList<>((List<Object>) w)
        : new ArrayList<>();
    warnings.add(warning);
    row.put("capture_warnings", warnings);
  }
}
