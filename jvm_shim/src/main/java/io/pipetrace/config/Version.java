package io.pipetrace.config;

import java.io.InputStream;
import java.util.Properties;

/** Versions baked into the jar by the package build (pipetrace/build.properties). */
public final class Version {
  public static final String PIPETRACE;
  public static final String BUILT_FOR_SPARK;
  /** The table's schema version: table.json, the one source both sides read. */
  public static final int SCHEMA = schemaVersion();

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

  private static int schemaVersion() {
    try (InputStream in = Version.class.getResourceAsStream("/pipetrace/table.json")) {
      return new com.fasterxml.jackson.databind.ObjectMapper().readTree(in)
          .get("schema_version").asInt();
    } catch (Exception e) {
      throw new IllegalStateException("pipetrace: table.json is missing from the jar", e);
    }
  }
}
