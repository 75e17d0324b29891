package io.pipetrace.capture;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.spark.sql.catalyst.plans.logical.Aggregate;
import org.apache.spark.sql.catalyst.plans.logical.Deduplicate;
import org.apache.spark.sql.catalyst.plans.logical.Distinct;
import org.apache.spark.sql.catalyst.plans.logical.Filter;
import org.apache.spark.sql.catalyst.plans.logical.GlobalLimit;
import org.apache.spark.sql.catalyst.plans.logical.Join;
import org.apache.spark.sql.catalyst.plans.logical.LocalLimit;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.Project;
import org.apache.spark.sql.catalyst.plans.logical.Sort;
import org.apache.spark.sql.catalyst.plans.logical.Union;
import org.apache.spark.sql.catalyst.trees.TreeNode;
import org.apache.spark.sql.catalyst.trees.TreeNodeTag;
import org.apache.spark.sql.execution.QueryExecution;
import org.apache.spark.sql.execution.SparkPlan;

/**
 * The agent's step a logical plan node was created by: a {@link TreeNodeTag} set from Python
 * (python/pipetrace/agent_steps.py) on the node a transformation made. Spark copies a node's
 * tags to the node a rule replaces it with, and a physical operator links to its logical node
 * ({@code SparkPlan.logicalLink}), so operators can name the agent's step they came from.
 */
public final class StepTags {
  static final TreeNodeTag<String> TAG = new TreeNodeTag<>("pipetrace.step");
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final int MAX_DEPTH = 4;

  /** One agent-written step, as tagged. */
  static final class Step {
    int id;
    String kind;
    String method;
    String source;
    String observedIn;
    String observedOut;
    LogicalPlan node;  // the analyzed node tagged
    java.util.List<org.apache.spark.sql.catalyst.expressions.Expression[]> forms;  // conjuncts
    java.util.List<org.apache.spark.sql.catalyst.expressions.Expression> keys;  // grouping
  }

  private StepTags() {}

  /**
   * Tag the node {@code dataset}'s transformation created (the first node of the step's kind
   * from its analyzed plan's root down, else the root) unless an earlier step tagged it.
   * Returns true when tagged.
   */
  public static boolean tag(Object dataset, String json) throws Exception {
    QueryExecution qe = (QueryExecution) dataset.getClass().getMethod("queryExecution")
        .invoke(dataset);
    LogicalPlan root = qe.analyzed();
    String kind = JSON.readTree(json).path("kind").asText();
    LogicalPlan node = root;
    LogicalPlan found = null;
    for (int i = 0; i < MAX_DEPTH && node != null && found == null; i++) {
      if (isKind(node, kind)) {
        found = node;
      } else {
        node = node.children().isEmpty() ? null : node.children().head();
      }
    }
    LogicalPlan target = found != null ? found : root;
    if (target.getTagValue(TAG).isDefined()) {
      return false;
    }
    target.setTagValue(TAG, json);
    return true;
  }

  private static boolean isKind(LogicalPlan node, String kind) {
    switch (kind) {
      case "filter":
        return node instanceof Filter;
      case "join":
        return node instanceof Join;
      case "dedup":
        return node instanceof Deduplicate || node instanceof Distinct
            || node instanceof Aggregate;
      case "aggregate":
        return node instanceof Aggregate;
      case "union":
        return node instanceof Union;
      case "sort":
        return node instanceof Sort;
      case "limit":
        return node instanceof GlobalLimit || node instanceof LocalLimit;
      case "project":
        return node instanceof Project;
      default:
        return false;
    }
  }

  /** The step tagged on this logical node, or null. */
  static Step of(TreeNode<?> node) {
    try {
      scala.Option<String> v = node.getTagValue(TAG);
      if (v.isEmpty()) {
        return null;
      }
      JsonNode j = JSON.readTree(v.get());
      Step s = new Step();
      s.id = j.path("id").asInt();
      s.kind = j.path("kind").asText(null);
      s.method = j.path("method").asText(null);
      s.source = j.path("source").isTextual() ? j.path("source").asText() : null;
      JsonNode observed = j.path("observed");
      if (observed.isArray() && observed.size() == 2) {
        s.observedIn = observed.get(0).asText();
        s.observedOut = observed.get(1).asText();
      }
      s.node = node instanceof LogicalPlan ? (LogicalPlan) node : null;
      return s;
    } catch (Throwable t) {
      return null;
    }
  }

  /** The step of the logical node this physical operator was planned from, or null. */
  static Step ofPhysical(SparkPlan plan) {
    try {
      scala.Option<LogicalPlan> link = plan.logicalLink();
      return link.isDefined() ? of(link.get()) : null;
    } catch (Throwable t) {
      return null;
    }
  }
}
