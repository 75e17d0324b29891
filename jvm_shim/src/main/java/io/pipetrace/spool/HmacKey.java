package io.pipetrace.spool;

import io.pipetrace.config.Settings;
import io.pipetrace.health.Log;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The key of the keyed row hash. With it, row_hash is HMAC-SHA256 instead of SHA-256, so only a
 * holder of the key can produce a row that verifies: someone who can write the table but lacks
 * the key cannot recompute hashes after an edit, as they can with the public SHA-256.
 *
 * <p>Read from the file named by spark.pipetrace.hmac_key_file, else from the driver's
 * PIPETRACE_HMAC_KEY environment variable (a Databricks cluster can fill it from a secret).
 * Never from Spark conf itself: the Spark UI and event logs show conf values. The rules match
 * python/pipetrace/keys.py (tests/fixtures/tamper.json holds a key and its id): spaces, tabs
 * and line ends around the key are not part of it, and it must have at least 16 bytes.
 */
public final class HmacKey {
  static final String ENV = "PIPETRACE_HMAC_KEY";
  static final int MIN_BYTES = 16;
  private static final byte[] ID_LABEL = "pipetrace key id".getBytes(StandardCharsets.US_ASCII);

  private final SecretKeySpec spec;
  /** Names the key without revealing it: the first 16 hex digits of HMAC(key, label). */
  public final String id;

  private HmacKey(byte[] key) throws Exception {
    spec = new SecretKeySpec(key, "HmacSHA256");
    id = Canonical.hex(mac(ID_LABEL)).substring(0, 16);
  }

  /**
   * The run's key, or null for unkeyed hashes. A key that is configured but unusable is
   * warned about and left out rather than thrown into Spark: verify with the key then names
   * every row of the run as not keyed, so the gap is visible, not silent.
   */
  static HmacKey resolve(Settings settings) {
    String source = settings.hmacKeyFile != null ? settings.hmacKeyFile : "$" + ENV;
    try {
      byte[] raw;
      if (settings.hmacKeyFile != null) {
        raw = Files.readAllBytes(Paths.get(settings.hmacKeyFile));
      } else {
        String env = System.getenv(ENV);
        if (env == null || env.isEmpty()) {
          return null;
        }
        raw = env.getBytes(StandardCharsets.UTF_8);
      }
      byte[] key = strip(raw);
      if (key.length < MIN_BYTES) {
        Log.warnOnce("hmac-key-short", "pipetrace: the HMAC key from " + source + " has "
            + key.length + " bytes, fewer than " + MIN_BYTES + "; steps are hashed WITHOUT a "
            + "key. Use a longer key, e.g. `openssl rand -hex 32`.");
        return null;
      }
      return new HmacKey(key);
    } catch (Throwable t) {
      Log.warnOnce("hmac-key-unreadable", "pipetrace: cannot read the HMAC key from " + source
          + " (" + t + "); steps are hashed WITHOUT a key. Check spark.pipetrace.hmac_key_file.");
      return null;
    }
  }

  /** The key in a key file's (or the variable's) bytes, stripped; refused when too short. */
  public static HmacKey of(byte[] raw) throws Exception {
    byte[] key = strip(raw);
    if (key.length < MIN_BYTES) {
      throw new IllegalArgumentException("the HMAC key has " + key.length + " bytes, fewer than "
          + MIN_BYTES);
    }
    return new HmacKey(key);
  }

  byte[] mac(byte[] data) throws Exception {
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(spec);
    return mac.doFinal(data);
  }

  /** Spaces, tabs and line ends around the key (a file's trailing newline) are not part of it. */
  static byte[] strip(byte[] raw) {
    int from = 0;
    int to = raw.length;
    while (from < to && isBlank(raw[from])) {
      from++;
    }
    while (to > from && isBlank(raw[to - 1])) {
      to--;
    }
    return Arrays.copyOfRange(raw, from, to);
  }

  private static boolean isBlank(byte b) {
    return b == ' ' || b == '\t' || b == '\r' || b == '\n';
  }
}
