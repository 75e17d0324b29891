package io.pipetrace.compat;

import org.apache.spark.sql.catalyst.trees.Origin;

/** Spark 3.5 (Scala 2.12): compiled against pyspark 3.5's jars into the spark35 jar only. */
public final class Spark35 extends SparkCompat {
  @Override
  public String line() {
    return "spark35";
  }

  @Override
  public String scala() {
    return "2.12";
  }

  /** Spark 3.5 keeps no Python origin on expressions: the step's code line stays null. */
  @Override
  public String pythonCallSite(Origin origin) {
    return null;
  }

}
