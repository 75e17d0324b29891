"""Jars the tests and benchmarks need from Maven Central, fetched with Maven into a cache.

The product never needs these (it installs with pip alone and compiles its shim with javac).
The Delta lane needs Delta Lake's Spark jars; the peer benchmark needs OpenLineage's. Each set
is fetched once with ``mvn dependency:copy`` into ``$PIPETRACE_JARS_CACHE/<set>`` (default
``~/.cache/pipetrace/jars``), never into git, and handed to Spark with ``spark.jars`` (no Ivy,
no ``spark.jars.packages``)::

    python jvm_shim/test_jars.py fetch delta          # prints the jar paths, one per line
    python jvm_shim/test_jars.py fetch openlineage

Versions: Delta 4.4.0 is the newest ``delta-spark_4.2_2.13`` on Maven Central (4.4.1 exists on
PyPI only; its Python package is paired with the 4.4.0 jars at the same version, see
DELTA_PYPI). Unity Catalog's server and Spark connector (``io.unitycatalog:unitycatalog-server``,
``unitycatalog-spark_2.13``) are not served by the registries this project's machines reach
(only ``unitycatalog-client`` is), so no set names them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE_ENV = "PIPETRACE_JARS_CACHE"
DELTA_VERSION = "4.4.0"
# The Python side of Delta (``delta.tables``, ``configure_spark_with_delta_pip``) at the jars'
# version; installed with pip into the Delta lane's PYTHONPATH.
DELTA_PYPI = f"delta-spark=={DELTA_VERSION}"
# The newest pyspark line Delta 4.4 supports (4.0-4.2, not 4.3): the Delta lane's pyspark.
DELTA_PYSPARK = "4.2.1"
OPENLINEAGE_VERSION = "1.53.0"

SETS: dict[str, list[str]] = {
    "delta": [f"io.delta:delta-spark_4.2_2.13:{DELTA_VERSION}",
              f"io.delta:delta-storage:{DELTA_VERSION}"],
    # A shaded jar: the OpenLineage client, Jackson and its transports are inside.
    "openlineage": [f"io.openlineage:openlineage-spark_2.13:{OPENLINEAGE_VERSION}"],
}


class JarsUnavailable(RuntimeError):
    """A jar could not be fetched; the message says what to install or set."""


def cache_root() -> Path:
    """``$PIPETRACE_JARS_CACHE`` or ``~/.cache/pipetrace/jars``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pipetrace" / "jars")


def jar_name(artifact: str) -> str:
    """``group:name:version`` -> ``name-version.jar`` (the name ``dependency:copy`` writes)."""
    _group, name, version = artifact.split(":")
    return f"{name}-{version}.jar"


def fetch(name: str, folder: Path | None = None) -> list[Path]:
    """The jars of set ``name`` in ``folder`` (default: the cache's ``<name>/``), fetched with
    Maven on first use (idempotent).

    Example::

        >>> [p.name for p in fetch("delta")]  # doctest: +SKIP
        ['delta-spark_4.2_2.13-4.4.0.jar', 'delta-storage-4.4.0.jar']
    """
    if name not in SETS:
        raise JarsUnavailable(f"no jar set {name!r}; known: {', '.join(sorted(SETS))}")
    folder = folder or cache_root() / name
    jars = []
    for artifact in SETS[name]:
        jar = folder / jar_name(artifact)
        if not (jar.is_file() and jar.stat().st_size > 0):
            _copy(artifact, folder, jar)
        jars.append(jar)
    return jars


def _copy(artifact: str, folder: Path, jar: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsUnavailable(
            f"Maven (mvn) is needed to fetch {artifact} from Maven Central: install it "
            f"(apt-get install maven), or put the jar at {jar} yourself")
    folder.mkdir(parents=True, exist_ok=True)
    # -U: a miss Maven cached earlier (before the artifact was published) is asked again.
    proc = subprocess.run([mvn, "-q", "-B", "-U", "dependency:copy", f"-Dartifact={artifact}",
                           f"-DoutputDirectory={folder}"], capture_output=True, text=True,
                          check=False, timeout=900)
    if proc.returncode != 0 or not jar.is_file():
        raise JarsUnavailable(f"mvn dependency:copy -Dartifact={artifact} failed "
                              f"({proc.returncode}); is Maven Central reachable?\n"
                              + (proc.stdout + proc.stderr)[-2000:])


def delta_python(cache: Path | None = None) -> Path:
    """A folder holding Delta's Python package (``delta``) at the jars' version, for PYTHONPATH.

    Installed with pip (``--no-deps``: the lane brings its own pyspark) once, then reused.
    """
    folder = (cache or cache_root()) / "delta" / "python"
    done = folder / ".pipetrace-complete"
    if done.is_file():
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                           "--disable-pip-version-check", "--target", str(folder), DELTA_PYPI],
                          capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise JarsUnavailable(f"pip install {DELTA_PYPI} failed ({proc.returncode}); is PyPI "
                              "reachable?\n" + (proc.stdout + proc.stderr)[-2000:])
    done.write_text(DELTA_PYPI + "\n", encoding="utf-8")
    return folder


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    get = sub.add_parser("fetch", help="fetch a set of jars (idempotent); print their paths")
    get.add_argument("set", choices=sorted(SETS))
    args = parser.parse_args(argv)
    try:
        for jar in fetch(args.set):
            print(jar)
        if args.set == "delta":
            print(delta_python())
    except JarsUnavailable as exc:
        print(f"test_jars: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
