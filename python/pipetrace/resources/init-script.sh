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

# Spark 4 only (Databricks Runtime 17+): an older runtime would fail to load the listener.
RUNTIME="${DATABRICKS_RUNTIME_VERSION:-}"
if [ -n "$RUNTIME" ] && [ "${RUNTIME%%.*}" -lt 17 ] 2>/dev/null; then
  off "Databricks Runtime $RUNTIME is older than 17 (Spark 4); pipetrace needs Spark 4"
fi

WHEEL="${PIPETRACE_WHEEL:-}"
if [ -n "$WHEEL" ] && [ -d "$WHEEL" ]; then
  WHEEL="$(ls -t "$WHEEL"/pipetrace-*.whl 2>/dev/null | head -n 1)"
fi

mkdir -p "$JAR_DIR" "$CONF_DIR" || off "cannot create $JAR_DIR or $CONF_DIR"
TMP_JAR="$JAR_DIR/.pipetrace-shim.jar.tmp"
if [ -n "${PIPETRACE_JAR:-}" ]; then
  cp "$PIPETRACE_JAR" "$TMP_JAR" 2>/dev/null || off "cannot copy the jar $PIPETRACE_JAR"
elif [ -n "$WHEEL" ] && [ -f "$WHEEL" ]; then
  python3 - "$WHEEL" "$TMP_JAR" <<'PY' || off "no pipetrace/jars/pipetrace-shim.jar in $WHEEL"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("pipetrace/jars/pipetrace-shim.jar") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
else
  off "set PIPETRACE_WHEEL (the wheel or its directory) or PIPETRACE_JAR"
fi
# A jar Spark cannot load would stop every session from starting: check it first.
python3 - "$TMP_JAR" <<'PY' || { rm -f "$TMP_JAR"; off "the jar is not a pipetrace listener jar"; }
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as jar:
    names = set(jar.namelist())
sys.exit(0 if {"io/pipetrace/PipetraceListener.class", "pipetrace/schema.json"} <= names else 1)
PY
mv -f "$TMP_JAR" "$JAR_DIR/pipetrace-shim.jar" || off "cannot install the jar into $JAR_DIR"
log "installed $JAR_DIR/pipetrace-shim.jar"

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
