package io.pipetrace;

import io.pipetrace.capture.Relations;
import io.pipetrace.health.Log;

import java.lang.reflect.Method;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.connector.catalog.SupportsWrite;
import org.apache.spark.sql.streaming.StreamingQuery;
import org.apache.spark.sql.streaming.StreamingQueryListener;

/**
 * The sink of each streaming query started on an attached session, so that each micro-batch's
 * write becomes a step that names where it wrote.
 *
 * <p>Spark says which sink a query writes to only on the query object, not in a micro-batch's
 * plan or events, and a query started with {@code trigger(availableNow=True)} may be gone from
 * {@code spark.streams} before pipetrace reads its last batch. So the sink is read when the query
 * starts: Spark delivers that event to the session's own listeners synchronously, on the query's
 * thread, before its first batch.
 *
 * <p>Two kinds of sinks need two paths. A DataSource V2 sink (memory, Kafka, console) runs each
 * batch as a {@code collect}, which reaches {@link PipetraceListener} like any action. A V1 sink
 * (files, Delta, foreachBatch) calls {@code addBatch}, which no QueryExecutionListener sees: the
 * tracker hands such a batch to {@link PipetraceListener#captureMicroBatch} when its execution
 * ends. A foreachBatch batch is not a step itself; the actions the function runs are.
 */
public final class StreamSinks extends StreamingQueryListener {
  private static final int MAX_QUERIES = 1024;

  /** What a query writes to, and the listener whose run its batches belong to. */
  public static final class Sink {
    public final PipetraceListener listener;
    public final String queryName;
    public final Relations.Rel output;   // kind, name, format, mode (the output mode)
    public final boolean addBatch;       // a V1 sink: no callback, the tracker captures its batches
    public final boolean foreachBatch;   // the function's actions are the steps

    Sink(PipetraceListener listener, String queryName, Relations.Rel output, boolean addBatch,
        boolean foreachBatch) {
      this.listener = listener;
      this.queryName = queryName;
      this.output = output;
      this.addBatch = addBatch;
      this.foreachBatch = foreachBatch;
    }
  }

  private static final Map<UUID, Sink> SINKS = Collections.synchronizedMap(
      new LinkedHashMap<UUID, Sink>(16, 0.75f, false) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<UUID, Sink> eldest) {
          return size() > MAX_QUERIES;
        }
      });

  private final SparkSession session;   // null when Spark created us from the conf
  private final PipetraceListener listener;

  StreamSinks(SparkSession session, PipetraceListener listener) {
    this.session = session;
    this.listener = listener;
  }

  /**
   * Used by Spark for spark.sql.streaming.streamingQueryListeners (set beside
   * spark.sql.queryExecutionListeners by `pipetrace run` and the init script): the session's
   * StreamingQueryManager is built on first use, inside its session's SQLConf, whose
   * PipetraceListener is the one its queries' batches belong to.
   */
  public StreamSinks(org.apache.spark.SparkConf conf) {
    this(null, PipetraceListener.BY_CONF.get(org.apache.spark.sql.internal.SQLConf.get()));
  }

  /** The sink of query {@code id}, or null when it started on no attached session. */
  public static Sink of(UUID id) {
    return id == null ? null : SINKS.get(id);
  }

  @Override
  public void onQueryStarted(QueryStartedEvent event) {
    try {
      if (listener == null) {
        return;  // a session pipetrace does not capture
      }
      StreamingQuery query = query(event.id());
      if (query != null) {
        SINKS.put(event.id(), describe(query, event.name()));
      }
    } catch (Throwable t) {
      Log.warnOnce("stream-sink", "pipetrace: cannot tell the sink of streaming query "
          + event.id() + "; its micro-batches are recorded without it", t);
    }
  }

  @Override
  public void onQueryProgress(QueryProgressEvent event) {}

  @Override
  public void onQueryTerminated(QueryTerminatedEvent event) {}

  /** The query, from the session that started it (ours, or the one active on its thread). */
  private StreamingQuery query(UUID id) {
    if (session != null) {
      return session.streams().get(id);
    }
    for (scala.Option<SparkSession> s : java.util.List.of(SparkSession.getActiveSession(),
        SparkSession.getDefaultSession())) {
      StreamingQuery q = s.isDefined() ? s.get().streams().get(id) : null;
      if (q != null) {
        return q;
      }
    }
    return null;
  }

  private Sink describe(StreamingQuery query, String queryName) throws Exception {
    // StreamingQueryWrapper.streamingQuery() and StreamExecution.sink()/outputMode() are
    // public in the bytecode but their classes moved package in Spark 4.1: call them by name.
    Object execution = call(query, "streamingQuery");
    Object sink = execution == null ? null : call(execution, "sink");
    Object mode = execution == null ? null : call(execution, "outputMode");
    Relations.Rel out = new Relations.Rel();
    out.mode = mode == null ? null : mode.toString();
    String cls = sink == null ? "unknown" : sink.getClass().getSimpleName();
    String text = sink == null ? null : sink.toString();
    String bracketed = text != null && text.endsWith("]") && text.indexOf('[') > 0
        ? text.substring(text.indexOf('[') + 1, text.length() - 1) : null;
    if ("MemorySink".equals(cls)) {
      out.kind = "table";   // spark.table(<query name>) reads it
      out.name = queryName;
      out.format = "memory";
    } else if (bracketed != null && ("FileStreamSink".equals(cls) || "DeltaSink".equals(cls))) {
      out.kind = "path";
      out.name = bracketed;   // redacted with the rest of the row when written
      out.format = "DeltaSink".equals(cls) ? "delta" : fileFormat(sink);
    } else {
      out.kind = "other";
      out.name = sink instanceof org.apache.spark.sql.connector.catalog.Table t ? t.name() : text;
      out.format = cls;
    }
    boolean v1 = sink != null && !(sink instanceof SupportsWrite);
    return new Sink(listener, queryName, out, v1, "ForeachBatchSink".equals(cls));
  }

  private static String fileFormat(Object fileSink) {
    try {
      java.lang.reflect.Field f = fileSink.getClass().getDeclaredField("fileFormat");
      f.setAccessible(true);
      Object format = f.get(fileSink);
      return format == null ? null : Relations.formatName(format);
    } catch (Throwable t) {
      return null;
    }
  }

  private static Object call(Object target, String method) {
    try {
      Method m = target.getClass().getMethod(method);
      return m.invoke(target);
    } catch (Throwable t) {
      return null;
    }
  }
}
