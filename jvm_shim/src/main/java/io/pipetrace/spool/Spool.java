package io.pipetrace.spool;

import io.pipetrace.config.Rules;
import io.pipetrace.config.Version;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The write-ahead log of one run: {@code <spool>/<run_id>/seg-NNNNNN.jsonl}, one step per line.
 *
 * <p>Layout (read by python/pipetrace/spool.py): {@code run.json} is the manifest;
 * {@code writer.lock} is locked by this JVM while it may append; at most one
 * {@code seg-N.jsonl.open} is being appended; sealed {@code seg-N.jsonl} are immutable and
 * numbered in increasing order. A committer turns sealed segments into Delta commits with
 * transaction id (pipetrace/run_id, N), so a crash at any point neither loses nor duplicates a
 * step. Numbers are {@code max(previous + 1, now in ms)}: they keep increasing when a run id is
 * reused after its spool directory was cleaned up, so a new segment is never mistaken for one
 * the table already has.
 */
public final class Spool implements AutoCloseable {
  private final Path dir;
  private final int maxSteps;
  private final long maxAgeMs;
  private final FileChannel lockChannel;
  private final FileLock lock;

  private long segment;          // number of the open segment, or of the last one
  private OutputStream out;      // open segment, or null
  private int stepsInSegment;
  private long openedAtMs;
  private long sealedSegments;

  Spool(Path root, String runId, String table, String appId, String keyId, int maxSteps,
      long maxAgeMs) throws IOException {
    this.dir = root.resolve(runId);
    this.maxSteps = maxSteps;
    this.maxAgeMs = maxAgeMs;
    Files.createDirectories(dir);
    lockChannel = FileChannel.open(dir.resolve("writer.lock"), StandardOpenOption.CREATE,
        StandardOpenOption.WRITE);
    // Committers probe this lock for a moment to see if we are alive: retry briefly.
    FileLock acquired = null;
    for (int attempt = 0; attempt < 50 && acquired == null; attempt++) {
      acquired = lockChannel.tryLock();
      if (acquired == null) {
        try {
          Thread.sleep(20);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
      }
    }
    if (acquired == null) {
      lockChannel.close();
      throw new IOException("another process is writing run " + runId + " in " + dir
          + "; give each process its own run_id");
    }
    lock = acquired;
    segment = lastSegmentNumber(dir);
    writeManifest(runId, table, appId, keyId);
  }

  Path dir() {
    return dir;
  }

  /** Append one step (a JSON line, without newline); seals the segment when it is full. */
  synchronized void append(byte[] line) throws IOException {
    if (out == null) {
      segment = Math.max(segment + 1, System.currentTimeMillis());
      Path open = dir.resolve(name(segment) + ".open");
      out = Files.newOutputStream(open, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
      openedAtMs = System.currentTimeMillis();
      stepsInSegment = 0;
    }
    // One write call per line keeps a crash from leaving more than a torn tail.
    byte[] buf = new byte[line.length + 1];
    System.arraycopy(line, 0, buf, 0, line.length);
    buf[line.length] = '\n';
    out.write(buf);
    out.flush();
    stepsInSegment++;
    if (stepsInSegment >= maxSteps) {
      seal();
    }
  }

  /** Seal the open segment if it has been open longer than the max age. */
  synchronized void sealIfOld(long nowMs) throws IOException {
    if (out != null && nowMs - openedAtMs >= maxAgeMs) {
      seal();
    }
  }

  /** Close and rename the open segment so a committer may take it. */
  synchronized void seal() throws IOException {
    if (out == null) {
      return;
    }
    out.close();
    out = null;
    Path open = dir.resolve(name(segment) + ".open");
    Files.move(open, dir.resolve(name(segment)), StandardCopyOption.ATOMIC_MOVE);
    sealedSegments++;
  }

  synchronized long sealedSegments() {
    return sealedSegments;
  }

  synchronized boolean hasOpenSegment() {
    return out != null;
  }

  @Override
  public synchronized void close() throws IOException {
    try {
      seal();
    } finally {
      try {
        lock.release();
      } finally {
        lockChannel.close();
      }
    }
  }

  public static String name(long n) {
    return Rules.segmentName(n);
  }

  private static long lastSegmentNumber(Path dir) throws IOException {
    long max = 0;
    try (var files = Files.list(dir)) {
      for (Path p : (Iterable<Path>) files::iterator) {
        String f = p.getFileName().toString();
        max = Math.max(max, Math.max(Rules.segmentNumber(f, false), Rules.segmentNumber(f, true)));
      }
    }
    return max;
  }

  private void writeManifest(String runId, String table, String appId, String keyId)
      throws IOException {
    Path manifest = dir.resolve("run.json");
    Map<String, Object> m = new LinkedHashMap<>();
    ObjectMapper mapper = new ObjectMapper();
    if (Files.exists(manifest)) {
      try {
        mapper.readTree(manifest.toFile()).fields().forEachRemaining(
            e -> m.put(e.getKey(), e.getValue()));
      } catch (Exception ignored) {
        // rewritten below
      }
    }
    m.put("run_id", runId);
    m.put("table", table);
    m.putIfAbsent("created_at", Instant.now().toString());
    m.put("app_id", appId);
    m.put("pid", ProcessHandle.current().pid());
    String host;
    try {
      host = InetAddress.getLocalHost().getHostName();
    } catch (Exception e) {
      host = null;
    }
    m.put("host", host);
    m.put("pipetrace_version", Version.PIPETRACE);
    m.put("schema_version", Version.SCHEMA);
    // Committers put it in each commit's anchor, so verify can tell a wrong key from an edit.
    m.put("key_id", keyId);
    Path tmp = dir.resolve("run.json.tmp");
    Files.write(tmp, mapper.writerWithDefaultPrettyPrinter().writeValueAsString(m)
        .getBytes(StandardCharsets.UTF_8));
    Files.move(tmp, manifest, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
  }
}
