package io.pipetrace.compat;

import org.apache.spark.sql.catalyst.trees.Origin;

/** Spark 4.0 to 4.x (Scala 2.13): compiled against pyspark 4.0's jars into the spark4 jar only. */
public final class Spark4 extends SparkCompat {
  @Override
  public String line() {
    return "spark4";
  }

  @Override
  public String scala() {
    return "2.13";
  }

  @Override
  public String pythonCallSite(Origin origin) {
    scala.Option<scala.Tuple2<String, String>> ctx = origin.pysparkErrorContext();
    return ctx.isDefined() ? ctx.get()._2() : null;
  }

}
