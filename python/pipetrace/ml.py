"""Spark ML training as labelled steps: each estimator ``fit`` (and each ``transform`` that runs
Spark jobs) called by the agent becomes one step, its internal actions folded under it.

Why Python: Spark posts ML events (``org.apache.spark.ml.MLEvents``: FitStart/FitEnd...) only
from the Scala ``Pipeline``/``PipelineModel``; PySpark's ``Pipeline._fit`` loops over the stages
in Python and each ``JavaEstimator`` calls its Java estimator's ``fit``, which posts nothing
(checked in Spark 3.5.9 and 4.3.0). So pipetrace wraps the public ``Estimator.fit`` and
``Transformer.transform`` while attached:

- during the call, the calling thread carries the Spark job tag ``pipetrace-ml-step-<event
  id>`` (``SparkContext.addJobTag``, public API): every SQL execution and job Spark ML starts
  carries it (execution start events have the thread's job tags; Spark ML's ``rdd``
  executions run no job), so the listener marks those actions' steps with ``parent_event_id``
  (no Py4J callback);
- when the call returns or raises, the step is sent through the JVM bridge (``_jvm.py``), so it
  takes the spool, redaction, seq and hash chain of every step, after its internal steps.

Only the outermost call is a step: a Pipeline's stage fits and transforms are its stages.
Nothing here ever changes what ``fit``/``transform`` return or raise.

Example::

    >>> from pipetrace import ml
    >>> ml.install(); ml.installed()
    True
    >>> ml.uninstall(); ml.installed()
    False
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import time
import uuid
from typing import Any

from pipetrace import patching

__all__ = ["TAG_PREFIX", "describe", "install", "installed", "uninstall"]

log = logging.getLogger("pipetrace")

# Must match io.pipetrace.capture.MlStep.TAG_PREFIX.
TAG_PREFIX = "pipetrace-ml-step-"
# How long the end of a call waits for Spark's listener bus to deliver what the call ran.
_WAIT_MS = 2_000
_UNKNOWN_ROWS = ("training_rows unknown: Spark ML reports no count of the rows a model was "
                 "trained on without a Spark job of its own (its summaries' numInstances run "
                 "one); the steps with this step's event id as parent_event_id show what their "
                 "scans read")

# Parameters naming the columns a stage reads, and those it adds (Spark ML's shared params).
_INPUT_PARAMS = ("inputCol", "inputCols", "featuresCol", "labelCol", "weightCol", "censorCol",
                 "userCol", "itemCol", "ratingCol", "itemsCol", "quantileProbabilitiesCol")
_OUTPUT_PARAMS = ("outputCol", "outputCols", "predictionCol", "probabilityCol",
                  "rawPredictionCol", "varianceCol", "quantilesCol", "leafCol",
                  "topicDistributionCol")

_lock = threading.Lock()
_installs = [0]  # attached handles that asked for tracing
_patches: list[patching.Patch] = []
_local = threading.local()  # .active: inside a traced call on this thread
_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def install() -> None:
    """Wrap ``Estimator.fit`` and ``Transformer.transform`` (counted: one per attach).

    A no-op when ``pyspark.ml`` cannot be imported (it needs numpy): nothing to trace then.
    """
    try:
        from pyspark.ml.base import Estimator, Transformer
    except ImportError:
        return

    with _lock:
        _installs[0] += 1
        if _patches:
            return
        for cls, kind in ((Estimator, "fit"), (Transformer, "transform")):
            patch = patching.wrap_method(cls, kind, functools.partial(_traced, kind))
            if patch is not None:
                _patches.append(patch)


def uninstall() -> None:
    """Undo one :func:`install`; the last one puts the original methods back."""
    with _lock:
        _installs[0] = max(0, _installs[0] - 1)
        if _installs[0]:
            return
        while _patches:
            _patches.pop().undo()


def installed() -> bool:
    """Whether fits and transforms are being traced now."""
    return bool(_patches)


def _traced(kind: str, original: Any) -> Any:
    def wrapper(self: Any, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "active", False) or not hasattr(dataset, "_jdf"):
            return original(self, dataset, *args, **kwargs)  # a stage's call, or Spark Connect
        step = _Step.begin(kind, self, dataset, args=args, kwargs=kwargs, frame=sys._getframe(1))
        if step is None:
            return original(self, dataset, *args, **kwargs)
        _local.active = True
        try:
            result = original(self, dataset, *args, **kwargs)
        except BaseException as exc:
            _local.active = False
            step.end(None, exc)
            raise
        _local.active = False
        step.end(result, None)
        return result

    return wrapper


def _class_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _value(stage: Any, name: str) -> Any:
    if not stage.hasParam(name):
        return None
    param = stage.getParam(name)
    return stage.getOrDefault(param) if stage.isDefined(param) else None


def _columns(stage: Any, names: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for name in names:
        value = _value(stage, name)
        for col in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(col, str) and col and col not in out:
                out.append(col)
    return out


def _stages(obj: Any) -> list[Any]:
    from pyspark.ml import Pipeline, PipelineModel

    if isinstance(obj, Pipeline):
        return list(obj.getStages())
    if isinstance(obj, PipelineModel):
        return list(obj.stages)
    return [obj]


def describe(obj: Any) -> dict[str, Any]:
    """What an estimator, pipeline or model is: class, uid, stages, params and columns.

    Public PySpark API only (``uid``, ``extractParamMap``, ``isSet``, ``getStages``).

    Example::

        >>> from pyspark.ml.feature import StringIndexer  # doctest: +SKIP
        >>> describe(StringIndexer(inputCol="c", outputCol="ci"))["input_columns"]  # doctest: +SKIP
        ['c']
    """
    stages = []
    produced: list[str] = []
    reads: list[str] = []
    for i, stage in enumerate(_stages(obj)):
        params = {}
        for param, value in stage.extractParamMap().items():
            if param.name != "stages":  # a nested Pipeline's stages are described as stages
                params[param.name] = json.dumps(value, default=str, sort_keys=True)
        inputs = _columns(stage, _INPUT_PARAMS)
        outputs = _columns(stage, _OUTPUT_PARAMS)
        reads += [c for c in inputs if c not in produced and c not in reads]
        produced += outputs
        stages.append({
            "index": i, "class": _class_name(stage), "uid": stage.uid, "params": params,
            "explicit_params": sorted(p.name for p in stage.params if stage.isSet(p)),
            "input_columns": inputs, "output_columns": outputs,
        })
    return {"estimator": _class_name(obj), "uid": obj.uid, "stages": stages,
            "input_columns": reads}


def _call_site(frame: Any) -> str | None:
    # The agent's line: the first caller outside pyspark and pipetrace.
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if "pyspark" + os.sep not in path and not path.startswith(_PKG_DIR):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None


_bridges: dict[int, Any] = {}


def _bridge(spark: Any) -> Any:
    from pipetrace._jvm import JvmBridge

    key = id(spark._jsparkSession)
    bridge = _bridges.get(key)
    if bridge is None:
        bridge = _bridges[key] = JvmBridge(spark)
    return bridge


class _Step:
    """One traced fit/transform: its id, start, what it works on; reported by :meth:`end`."""

    def __init__(self, kind: str, target: Any, dataset: Any, call_site: str | None) -> None:
        self.kind = kind
        self.id = str(uuid.uuid4())
        self.dataset = dataset
        self.spark = dataset.sparkSession
        self.sc = self.spark.sparkContext
        self.call_site = call_site
        self.warnings: list[str] = []
        try:
            self.ml = describe(target)
        except Exception as exc:  # noqa: BLE001 - an exotic stage: the step stays, less detailed
            self.ml = {"estimator": _class_name(target), "uid": getattr(target, "uid", None),
                       "stages": [], "input_columns": []}
            self.warnings.append(f"ml: cannot describe {_class_name(target)}: {exc}")
        self.sc.addJobTag(TAG_PREFIX + self.id)
        self.started_ms = int(time.time() * 1000)
        self.t0 = time.perf_counter()

    @classmethod
    def begin(cls, kind: str, target: Any, dataset: Any, *, args: tuple[Any, ...],
              kwargs: dict[str, Any], frame: Any) -> _Step | None:
        """Start tracing (None when it cannot: the call then runs untraced)."""
        try:
            params = args[0] if args else kwargs.get("params")
            if isinstance(params, dict) and params:
                target = target.copy(params)  # what fit(df, {param: value}) really fits
            step = cls(kind, target, dataset, _call_site(frame))
            if isinstance(params, (list, tuple)):
                step.warnings.append(f"ml: fitted {len(params)} param maps; params are the "
                                     "estimator's own, without each map's overrides")
            return step
        except Exception as exc:  # noqa: BLE001 - never break the agent's fit
            log.debug("pipetrace: cannot trace a Spark ML %s: %s", kind, exc)
            return None

    def end(self, result: Any, error: BaseException | None) -> None:
        """Take the job tag off and report the step (never raises)."""
        duration_ms = int((time.perf_counter() - self.t0) * 1000)
        try:
            self.sc.removeJobTag(TAG_PREFIX + self.id)
            ml = dict(self.ml)
            if self.kind == "fit":
                if result is not None and hasattr(result, "uid"):
                    ml["model"], ml["model_uid"] = _class_name(result), result.uid
                ml["training_rows"] = None
                self.warnings.append(_UNKNOWN_ROWS)
            payload = {
                "event_id": self.id, "kind": self.kind, "wait_ms": _WAIT_MS,
                "spark_func": f"{self.ml['estimator']}.{self.kind}",
                "started_ms": self.started_ms, "duration_ms": duration_ms,
                "call_site": self.call_site, "ml": ml, "warnings": self.warnings,
                "error": None if error is None else f"{_class_name(error)}: {error}",
            }
            output = None
            if self.kind == "transform" and hasattr(result, "_jdf"):
                # later actions on the result name this transformer (context 'ml_model')
                payload["output_model"] = f"{self.ml['estimator']} {self.ml['uid']}"
                output = result._jdf.queryExecution()
            _bridge(self.spark).ml_step(self.dataset._jdf.queryExecution(), output, payload)
        except Exception as exc:  # noqa: BLE001 - the agent's fit outcome stands
            log.warning("pipetrace: could not record a Spark ML %s: %s", self.kind, exc)
