package io.pipetrace.capture;

/**
 * One input column a value (or the step's row set) was derived from: the input as
 * {@code inputs} records it (name and kind), the input's column (null: the input's rows, no
 * particular column, as for {@code count(*)}), and how.
 */
record ColumnOrigin(String input, String kind, String column, How how) {

  /** How an input column reaches an output column, or the step's rows. */
  enum How {
    // Value kinds, weakest first: a path's kind is the strongest met along it.
    DIRECT("direct"),
    EXPRESSION("expression"),
    AGGREGATE("aggregate"),
    WINDOW("window"),
    // Row-level kinds: which rows (or groups) there are, or their order; for every column.
    JOIN_KEY("join_key"),
    FILTER("filter"),
    GROUP_BY("group_by"),
    SORT("sort");

    final String label;

    How(String label) {
      this.label = label;
    }

    boolean rowLevel() {
      return ordinal() > WINDOW.ordinal();
    }

    /** The stronger of two value kinds (direct < expression < aggregate < window). */
    static How stronger(How a, How b) {
      return a.ordinal() >= b.ordinal() ? a : b;
    }
  }

  /** This origin seen through a value context: the stronger of the two kinds. */
  ColumnOrigin through(How context) {
    return as(How.stronger(how, context));
  }

  ColumnOrigin as(How h) {
    return h == how ? this : new ColumnOrigin(input, kind, column, h);
  }
}
