import io.pipetrace.capture.FileSet;
import io.pipetrace.redact.Redactor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.regex.Pattern;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;

/**
 * What inputs' identity costs pipetrace's writer thread for an input of n files: adding the
 * FileStatus objects Spark holds to a FileSet, then the fingerprint (redact each path, sort,
 * SHA-256), with the redaction rules every step gets. Prints one JSON object per size.
 * Run by benchmarks/input_identity.py.
 */
public final class IdentityCost {
  public static void main(String[] args) throws Exception {
    // SecretRules run for every path, as in a real run (plus one pattern that never matches).
    Redactor rules = Redactor.NONE.maskingLiterals(Pattern.compile("(?!)"));
    int reps = Integer.parseInt(args[0]);
    for (int i = 1; i < args.length; i++) {
      int n = Integer.parseInt(args[i]);
      List<FileStatus> files = synthetic(n);
      double[] add = new double[reps];
      double[] hash = new double[reps];
      double[] raw = new double[reps];
      String fingerprint = null;
      for (int r = 0; r < reps; r++) {
        long t0 = System.nanoTime();
        FileSet set = new FileSet();
        for (FileStatus f : files) {
          set.add(f);
        }
        long t1 = System.nanoTime();
        fingerprint = set.fingerprint(rules);
        long t2 = System.nanoTime();
        set.fingerprint(Redactor.NONE);
        long t3 = System.nanoTime();
        add[r] = (t1 - t0) / 1e6;
        hash[r] = (t2 - t1) / 1e6;
        raw[r] = (t3 - t2) / 1e6;
      }
      System.out.printf(java.util.Locale.ROOT,
          "{\"files\": %d, \"reps\": %d, \"add_ms\": %.1f, \"fingerprint_ms\": %.1f,"
              + " \"fingerprint_unredacted_ms\": %.1f, \"total_ms\": %.1f, \"fingerprint\": \"%s\"}%n",
          n, reps, median(add), median(hash), median(raw), median(add) + median(hash), fingerprint);
    }
  }

  /** n files of a date-partitioned table on an object store, as a listing would return them. */
  private static List<FileStatus> synthetic(int n) {
    Random random = new Random(42);
    List<FileStatus> out = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      Path path = new Path(String.format(java.util.Locale.ROOT,
          "s3a://bucket/warehouse/events/date=2026-%02d-%02d/part-%05d-%08x-c000.snappy.parquet",
          1 + i % 12, 1 + i % 28, i, random.nextInt()));
      out.add(new FileStatus(1_000_000L + random.nextInt(1 << 20), false, 1, 1 << 27,
          1_764_000_000_000L + random.nextInt(1 << 30), path));
    }
    return out;
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s[s.length / 2];
  }
}
