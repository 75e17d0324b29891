#!/bin/bash
# pipetrace cluster init script: capture every Spark action on this cluster into pipeline_steps.
#
# Installs the pipetrace wheel into the cluster's Python, puts its listener jar on the driver
# classpath, and writes the driver Spark conf (listener class + spark.pipetrace.* settings).
# It never keeps a cluster from starting: on any problem it logs, leaves capture off, exits 0.
# Every file it writes is under ${PIPETRACE_INIT_ROOT:-/} (tests run it in a temp dir).
#
# Settings (cluster environment variables; `pipetrace databricks init-script` fills defaults):
#   PIPETRACE_TABLE   target table, catalog.schema.table or a path   (default below)
#   PIPETRACE_SPOOL   driver-local spool directory                   (default below)
#   PIPETRACE_WHEEL   the wheel, or a directory holding pipetrace-*.whl (e.g. /Volumes/...)
#   PIPETRACE_JAR     the listener jar, if not taken from the wheel
#   PIPETRACE_WRITER  auto | spark | delta-rs | spool                (default auto)
#   PIPETRACE_FORMAT  table format of Spark's writer                 (default delta)
set -u

ROOT="${PIPETRACE_INIT_ROOT:-/}"
ROOT="${ROOT%/}"
TABLE="${PIPETRACE_TABLE:-__PIPETRACE_TABLE__}"
SPOOL="${PIPETRACE_SPOOL:-__PIPETRACE_SPOOL__}"
WRITER="${PIPETRACE_WRITER:-auto}"
FORMAT="${PIPETRACE_FORMAT:-delta}"
JAR_DIR="$ROOT/databricks/jars"
CONF_DIR="$ROOT/databricks/driver/conf"
CONF_FILE="$CONF_DIR/00-pipetrace.conf"
PIP="${PIPETRACE_PIP:-$ROOT/databricks/python3/bin/pip}"
LOG_DIR="$ROOT/tmp/pipetrace"
LISTENER="io.pipetrace.PipetraceListener"
STREAM_LISTENER="io.pipetrace.StreamSinks"

mkdir -p "$LOG_DIR" 2>/dev/null
log() { echo "pipetrace init: $*" | tee -a "$LOG_DIR/init.log" >&2; }
off() {
  log "capture is OFF: $*"
  rm -f "$CONF_FILE" 2>/dev/null
  exit 0
}
trap 'off "unexpected error on line $LINENO"' ERR

WHEEL="${PIPETRACE_WHEEL:-}"
if [ -n "$WHEEL" ] && [ -d "$WHEEL" ]; then
  WHEEL="$(ls -t "$WHEEL"/pipetrace-*.whl 2>/dev/null | head -n 1)"
fi
if [ -z "${PIPETRACE_JAR:-}" ] && { [ -z "$WHEEL" ] || [ ! -f "$WHEEL" ]; }; then
  off "set PIPETRACE_WHEEL (the wheel or its directory) or PIPETRACE_JAR"
fi

# One jar per Spark line: Databricks Runtime 14.x-16.x is Spark 3.5 (Scala 2.12), 17+ is Spark 4
# (Scala 2.13). The table of lines travels in the wheel and in each jar (spark_lines.json).
# Outside Databricks, PIPETRACE_SPARK_VERSION (or the pyspark python3 finds) names the Spark.
RUNTIME="${DATABRICKS_RUNTIME_VERSION:-}"
SPARK="${PIPETRACE_SPARK_VERSION:-}"
if [ -z "$RUNTIME" ] && [ -z "$SPARK" ]; then
  SPARK="$(python3 -c 'import pyspark; print(pyspark.__version__)' 2>/dev/null || true)"
fi

mkdir -p "$JAR_DIR" "$CONF_DIR" || off "cannot create $JAR_DIR or $CONF_DIR"
TMP_JAR="$JAR_DIR/.pipetrace-shim.jar.tmp"
# A jar Spark cannot load would stop every session from starting: pick and check it first.
WHY="$(python3 - "$TMP_JAR" "$RUNTIME" "$SPARK" "$WHEEL" "${PIPETRACE_JAR:-}" 2>&1 <<'PY'
import json, shutil, sys, zipfile
tmp, runtime, spark, wheel, jar = sys.argv[1:6]

def key(v):
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)

def fail(why):
    print(why)
    sys.exit(1)

try:
    with zipfile.ZipFile(jar or wheel) as z:
        name = "pipetrace/spark_lines.json" if jar else "pipetrace/resources/spark_lines.json"
        lines = json.loads(z.read(name))["lines"]
except Exception as exc:
    fail(f"{jar or wheel} is not a pipetrace jar or wheel of this version ({exc})")
if runtime:
    fits = [x for x in lines if key(x["databricks_runtime_min"]) <= key(runtime)]
    if not fits:
        low = min(lines, key=lambda x: key(x["databricks_runtime_min"]))
        fail(f"Databricks Runtime {runtime} is older than {low['databricks_runtime_min']} "
             f"(Spark {low['spark_min']}); pipetrace needs Databricks Runtime "
             f"{low['databricks_runtime_min']} or newer")
    line = max(fits, key=lambda x: key(x["databricks_runtime_min"]))
elif spark:
    fits = [x for x in lines if key(x["spark_min"]) <= key(spark) < key(x["spark_below"])]
    if not fits:
        fail(f"Spark {spark} is not supported; pipetrace supports Spark 3.5 and 4.x")
    line = fits[0]
else:
    fail("cannot tell which Spark this cluster runs: set PIPETRACE_SPARK_VERSION")
try:
    if jar:
        shutil.copyfile(jar, tmp)
    else:
        with zipfile.ZipFile(wheel) as whl, whl.open(f"pipetrace/jars/{line['jar']}") as src, \
                open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
except KeyError:
    fail(f"{wheel} has no pipetrace/jars/{line['jar']} (it was built for one Spark line only): "
         "use the release wheel, built with PIPETRACE_SPARK_LINES=all")
except OSError as exc:
    fail(f"cannot copy the jar: {exc}")
with zipfile.ZipFile(tmp) as z:
    names = set(z.namelist())
    manifest = z.read("META-INF/MANIFEST.MF").decode("utf-8", "replace")
if not {"io/pipetrace/PipetraceListener.class", "pipetrace/schema.json"} <= names:
    fail("the jar is not a pipetrace listener jar")
built = dict(r.split(":", 1) for r in manifest.splitlines() if ":" in r).get("Spark-Line", "").strip()
if built != line["line"]:
    fail(f"the jar was built for the Spark line {built or 'unknown'}; this cluster needs "
         f"{line['jar']} from the same pipetrace wheel")
print(f"{line['jar']} (Spark line {line['line']}, Scala {line['scala']})")
PY
)" || { rm -f "$TMP_JAR"; off "$WHY"; }
mv -f "$TMP_JAR" "$JAR_DIR/pipetrace-shim.jar" || off "cannot install the jar into $JAR_DIR"
log "installed $JAR_DIR/pipetrace-shim.jar: $WHY"

if [ -n "$WHEEL" ] && [ -f "$WHEEL" ]; then
  if [ -x "$PIP" ]; then
    "$PIP" install --quiet --no-deps "$WHEEL" >>"$LOG_DIR/init.log" 2>&1 \
      && log "installed $(basename "$WHEEL") into the cluster's Python" \
      || log "pip could not install $WHEEL (capture still works; the CLI/attach() will not)"
  else
    log "no pip at $PIP: skipped the Python package (capture still works)"
  fi
fi

# Written last and atomically: capture is on only when the jar above is in place.
cat > "$CONF_FILE.tmp" <<CONF || off "cannot write $CONF_FILE"
[driver] {
  "spark.sql.queryExecutionListeners" = "$LISTENER"
  "spark.sql.streaming.streamingQueryListeners" = "$STREAM_LISTENER"
  "spark.pipetrace.table" = "$TABLE"
  "spark.pipetrace.spool" = "$SPOOL"
  "spark.pipetrace.writer" = "$WRITER"
  "spark.pipetrace.format" = "$FORMAT"
}
CONF
mv -f "$CONF_FILE.tmp" "$CONF_FILE" || off "cannot write $CONF_FILE"
log "capture is ON: every Spark action on this cluster goes to $TABLE (spool $SPOOL)"
exit 0
