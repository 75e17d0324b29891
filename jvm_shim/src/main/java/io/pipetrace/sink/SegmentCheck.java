package io.pipetrace.sink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * A spool segment Spark's writer can take, or why not. A segment with a line that is not a
 * step (torn, edited, truncated) is moved to {@code <run>/quarantine/} with a {@code .reason}
 * file, the layout python/pipetrace/spool.py uses, so one bad line never blocks the run's
 * other steps (Spark's FAILFAST JSON reader failed the whole batch, again and again).
 */
final class SegmentCheck {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SegmentCheck() {}

  /** Why {@code lines} of run {@code runId} cannot be committed, or null when they can. */
  static String problem(List<String> lines, String runId) {
    int number = 0;
    for (String line : lines) {
      number++;
      if (line.isBlank()) {
        continue;
      }
      JsonNode step;
      try {
        step = JSON.readTree(line);
      } catch (IOException e) {
        return "line " + number + ": not valid JSON (" + e.getMessage().split("\n")[0] + ")";
      }
      if (step == null || !step.isObject()) {
        return "line " + number + ": not a JSON object";
      }
      if (!step.path("seq").canConvertToLong() || !step.path("event_id").isTextual()) {
        return "line " + number + ": no integer seq or no event_id";
      }
      if (!runId.equals(step.path("run_id").asText(null))) {
        return "line " + number + ": run_id " + step.path("run_id") + " is not " + runId;
      }
    }
    return null;
  }

  /** Move the segment out of the run's way, with the reason next to it. */
  static void quarantine(Path segment, String reason) throws IOException {
    Path held = segment.getParent().resolve("quarantine");
    Files.createDirectories(held);
    Path target = held.resolve(segment.getFileName());
    Files.move(segment, target, StandardCopyOption.REPLACE_EXISTING);
    Files.write(held.resolve(segment.getFileName() + ".reason"),
        reason.getBytes(StandardCharsets.UTF_8));
  }
}
