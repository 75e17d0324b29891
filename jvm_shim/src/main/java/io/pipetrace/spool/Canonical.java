package io.pipetrace.spool;

import io.pipetrace.capture.PlanText;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The row hash behind tamper evidence: SHA-256 (HMAC-SHA256 when the run has a key, see
 * {@link HmacKey}) over a canonical, schema-ordered encoding of a step that
 * python/pipetrace/verify.py reproduces from the table's values.
 *
 * <p>Encoding (no escaping anywhere, so both sides agree byte for byte): null {@code n};
 * boolean {@code t}/{@code f}; integer and timestamp (epoch microseconds) {@code i<decimal>;};
 * string {@code s<utf-8 length>:<utf-8 bytes>}; array {@code [..]}; map {@code {..}} with
 * entries sorted by the UTF-8 bytes of the key; struct {@code (..)} in schema order. A row is
 * the struct of every column but row_hash, of the row's schema_version: a field added later
 * (metadata {@code since} above it) is not part of an older row's encoding, as in verify.py.
 * tests/fixtures/shared_rules.json holds rows, their encodings and hashes that both reproduce.
 */
public final class Canonical {
  private static final JsonNode SCHEMA = load();

  private Canonical() {}

  private static JsonNode load() {
    try (InputStream in = Canonical.class.getResourceAsStream("/pipetrace/schema.json")) {
      return new ObjectMapper().readTree(in);
    } catch (Exception e) {
      throw new IllegalStateException("pipetrace: schema.json is missing from the jar", e);
    }
  }

  /** Hex SHA-256 of the row's canonical encoding, or its HMAC-SHA256 when key is not null. */
  public static String rowHash(Map<String, Object> row, HmacKey key) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream(8192);
    Object v = row.get("schema_version");
    int version = v instanceof Number && ((Number) v).intValue() != 0 ? ((Number) v).intValue() : 1;
    out.write('(');
    for (JsonNode field : SCHEMA.get("fields")) {
      String name = field.get("name").asText();
      if (!"row_hash".equals(name) && since(field) <= version) {
        encode(out, row.get(name), field.get("type"), version);
      }
    }
    out.write(')');
    byte[] bytes = out.toByteArray();
    return hex(key != null ? key.mac(bytes) : MessageDigest.getInstance("SHA-256").digest(bytes));
  }

  static String hex(byte[] digest) {
    StringBuilder hex = new StringBuilder(digest.length * 2);
    for (byte b : digest) {
      hex.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
    }
    return hex.toString();
  }

  @SuppressWarnings("unchecked")
  private static int since(JsonNode field) {
    return field.path("metadata").path("since").asInt(1);
  }

  private static void encode(ByteArrayOutputStream out, Object value, JsonNode type, int version)
      throws Exception {
    if (value == null) {
      out.write('n');
      return;
    }
    if (type.isTextual()) {
      switch (type.asText()) {
        case "string":
          byte[] b = value instanceof PlanText.Text ? ((PlanText.Text) value).utf8()
              : value.toString().getBytes(StandardCharsets.UTF_8);
          out.write(('s' + Integer.toString(b.length) + ':').getBytes(StandardCharsets.US_ASCII));
          out.write(b);
          return;
        case "boolean":
          out.write((Boolean) value ? 't' : 'f');
          return;
        case "timestamp":
          Instant t = value instanceof Instant ? (Instant) value : Instant.parse(value.toString());
          long micros = Math.addExact(Math.multiplyExact(t.getEpochSecond(), 1_000_000L),
              t.getNano() / 1_000);
          writeInt(out, micros);
          return;
        default:  // integer, long
          writeInt(out, ((Number) value).longValue());
          return;
      }
    }
    switch (type.get("type").asText()) {
      case "array":
        out.write('[');
        for (Object item : (List<Object>) value) {
          encode(out, item, type.get("elementType"), version);
        }
        out.write(']');
        return;
      case "map":
        TreeMap<byte[], Object[]> sorted = new TreeMap<>(Canonical::compareBytes);
        for (Map.Entry<String, Object> e : ((Map<String, Object>) value).entrySet()) {
          sorted.put(e.getKey().getBytes(StandardCharsets.UTF_8),
              new Object[] {e.getKey(), e.getValue()});
        }
        out.write('{');
        for (Object[] kv : sorted.values()) {
          encode(out, kv[0], type.get("keyType"), version);
          encode(out, kv[1], type.get("valueType"), version);
        }
        out.write('}');
        return;
      default:  // struct
        Map<String, Object> struct = (Map<String, Object>) value;
        out.write('(');
        for (JsonNode field : type.get("fields")) {
          if (since(field) <= version) {
            encode(out, struct.get(field.get("name").asText()), field.get("type"), version);
          }
        }
        out.write(')');
    }
  }

  private static void writeInt(ByteArrayOutputStream out, long v) {
    byte[] b = ('i' + Long.toString(v) + ';').getBytes(StandardCharsets.US_ASCII);
    out.write(b, 0, b.length);
  }

  private static int compareBytes(byte[] a, byte[] b) {
    for (int i = 0; i < Math.min(a.length, b.length); i++) {
      int c = Integer.compare(a[i] & 0xff, b[i] & 0xff);
      if (c != 0) {
        return c;
      }
    }
    return Integer.compare(a.length, b.length);
  }

  static List<String> columns() {
    List<String> names = new ArrayList<>();
    SCHEMA.get("fields").forEach(f -> names.add(f.get("name").asText()));
    return names;
  }
}
