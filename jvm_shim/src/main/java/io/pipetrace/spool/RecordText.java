package io.pipetrace.spool;

import io.pipetrace.redact.Redactor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * The text a run's Python side knows -- argv, the script, notebook cells -- redacted into the
 * run's record. python/pipetrace/run_record.py leaves it raw in {@code record.py.json} (the
 * rules that find secrets live here, in the JVM); only what passed through the redactor is
 * copied into {@code record.json}, the file that is committed.
 */
final class RecordText {
  // "--password hunter2": an option naming a secret masks the argument after it too.
  private static final Pattern SECRET_OPTION = Pattern.compile(
      "(?i)-{1,2}[\\w.\\-]*(password|passwd|pwd|secret|token|credential|api[_.\\-]?key"
          + "|access[_.\\-]?key|private[_.\\-]?key)[\\w.\\-]*");
  private static final ObjectMapper JSON = new ObjectMapper();

  private RecordText() {}

  /** Copy the Python side's facts into {@code row}, text redacted; nothing when there are none. */
  static void addPythonFacts(Map<String, Object> row, Path pyFile, Redactor redactor,
      List<String> warnings) throws Exception {
    if (!Files.exists(pyFile)) {
      return;
    }
    JsonNode py = JSON.readTree(pyFile.toFile());
    if (redactor == null) {
      warnings.add("argv, script_text, cells: not recorded, the run's session was gone "
          + "before they could be redacted");
      return;
    }
    if (py.path("argv").isArray()) {
      row.put("argv", argv(py.get("argv"), redactor));
    }
    String path = py.path("script_path").asText(null);
    String sha = py.path("script_sha256").asText(null);
    if (path != null && sha != null) {
      row.put("script_path", redactor.redact(path));
      row.put("script_sha256", sha);
      row.put("script_text", script(Path.of(path), sha, redactor, warnings));
    }
    if (py.path("cells").isArray()) {
      List<Map<String, Object>> cells = new ArrayList<>();
      for (JsonNode cell : py.get("cells")) {
        String text = cell.path("text").asText("");
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("execution_count", cell.path("execution_count").isNumber()
            ? cell.get("execution_count").asLong() : null);
        c.put("sha256", RunRecord.sha256(text));
        c.put("text", redactor.redactCapped(text, RunRecord.MAX_TEXT).text());
        cells.add(c);
      }
      row.put("cells", cells);
    }
  }

  /** Each argument redacted; the value after an option naming a secret is masked whole. */
  static List<String> argv(JsonNode args, Redactor redactor) {
    List<String> out = new ArrayList<>();
    boolean maskNext = false;
    for (JsonNode a : args) {
      String arg = a.asText();
      out.add(maskNext ? Redactor.MASK_TEXT : redactor.redact(arg));
      maskNext = !maskNext && SECRET_OPTION.matcher(arg).matches();
    }
    return out;
  }

  /** The script's text, if its bytes are still the ones hashed at the start; else null. */
  private static String script(Path path, String sha, Redactor redactor, List<String> warnings) {
    try {
      byte[] bytes = Files.readAllBytes(path);
      if (!sha.equals(RunRecord.sha256(bytes))) {
        warnings.add("script_text: " + path.getFileName() + " changed during the run (its "
            + "SHA-256 differs from script_sha256); its text is not recorded");
        return null;
      }
      Redactor.Capped capped = redactor.redactCapped(new String(bytes, StandardCharsets.UTF_8),
          RunRecord.MAX_TEXT);
      if (capped.cut()) {
        warnings.add("script_text: cut at " + RunRecord.MAX_TEXT + " characters");
      }
      return capped.text();
    } catch (Exception e) {
      warnings.add("script_text: cannot read the script (" + e.getClass().getSimpleName() + ")");
      return null;
    }
  }
}
