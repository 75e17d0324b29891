package io.pipetrace;

import java.io.InputStream;
import java.util.Properties;

/** Versions baked into the jar by the package build (pipetrace/build.properties). */
final class Version {
  static final String PIPETRACE;
  static final String BUILT_FOR_SPARK;
  static final int SCHEMA = 1;

  static {
    Properties p = new Properties();
    try (InputStream in = Version.class.getResourceAsStream("/pipetrace/build.properties")) {
      if (in != null) {
        p.load(in);
      }
    } catch (Exception ignored) {
      // defaults below
    }
    PIPETRACE = p.getProperty("pipetrace.version", "unknown");
    BUILT_FOR_SPARK = p.getProperty("spark.version", "unknown");
  }

  private Version() {}
}
