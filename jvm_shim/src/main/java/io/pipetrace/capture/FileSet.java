package io.pipetrace.capture;

import io.pipetrace.redact.Redactor;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.hadoop.fs.FileStatus;

/**
 * The identity of a set of files: how many, their total size, the newest modification time and
 * a fingerprint of the sorted (path, size, mtime) list. Built from FileStatus objects Spark
 * already holds; pure computation, no I/O. Runs on pipetrace's writer thread.
 *
 * <p>Fingerprint: hex SHA-256 over one UTF-8 line {@code path\tsize\tmtime_ms\n} per file,
 * sorted by path in code point order (the order of Python's {@code sorted} and of UTF-8 bytes),
 * each path the qualified URI Spark listed, redacted (credentials removed) as its directory and
 * its file name, each on its own. A file read by two scans of one input counts once.
 */
public final class FileSet {
  private final Map<String, long[]> files = new HashMap<>();
  private long bytes;
  private long newest = Long.MIN_VALUE;

  /** Add one file; a path already added is not counted again. */
  public void add(FileStatus status) {
    String path = status.getPath().toString();
    long[] sizeAndTime = {status.getLen(), status.getModificationTime()};
    if (files.putIfAbsent(path, sizeAndTime) == null) {
      bytes += sizeAndTime[0];
      newest = Math.max(newest, sizeAndTime[1]);
    }
  }

  public long files() {
    return files.size();
  }

  public long bytes() {
    return bytes;
  }

  /** Newest modification time (epoch ms), or null for no file. */
  public Long modifiedMax() {
    return files.isEmpty() ? null : newest;
  }

  /** The fingerprint (see the class comment), paths passed through {@code redactor}. */
  public String fingerprint(Redactor redactor) throws java.security.NoSuchAlgorithmException {
    List<String[]> lines = new ArrayList<>(files.size());
    // Redacted as directory and file name: the directory (scheme, credentials, partition
    // values) once for all its files, so 100,000 paths cost 100,000 short names, not 100,000
    // URI scans (see benchmarks/input_identity.py).
    Map<String, String> dirs = new HashMap<>();
    for (Map.Entry<String, long[]> e : files.entrySet()) {
      String path = e.getKey();
      int slash = path.lastIndexOf('/');
      String dir = dirs.computeIfAbsent(path.substring(0, Math.max(slash, 0)), redactor::redact);
      String redacted = slash < 0 ? redactor.redact(path)
          : dir + "/" + redactor.redact(path.substring(slash + 1));
      long[] v = e.getValue();
      lines.add(new String[] {redacted, v[0] + "\t" + v[1]});
    }
    lines.sort((a, b) -> compareCodePoints(a[0], b[0]));
    MessageDigest sha = MessageDigest.getInstance("SHA-256");
    for (String[] line : lines) {
      sha.update((line[0] + "\t" + line[1] + "\n").getBytes(StandardCharsets.UTF_8));
    }
    byte[] digest = sha.digest();
    StringBuilder hex = new StringBuilder(64);
    for (byte b : digest) {
      hex.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
    }
    return hex.toString();
  }

  /**
   * Code point order of two strings. Java's compareTo orders UTF-16 units, which puts
   * characters above U+FFFF (surrogate pairs) before U+E000..U+FFFF; shifting the two ranges
   * past each other gives code point order.
   */
  static int compareCodePoints(String a, String b) {
    int n = Math.min(a.length(), b.length());
    for (int i = 0; i < n; i++) {
      char x = a.charAt(i);
      char y = b.charAt(i);
      if (x != y) {
        return Integer.compare(shifted(x), shifted(y));
      }
    }
    return Integer.compare(a.length(), b.length());
  }

  private static int shifted(char c) {
    if (c >= 0xE000) {
      return c - 0x800;
    }
    return c >= 0xD800 ? c + 0x2000 : c;
  }
}
