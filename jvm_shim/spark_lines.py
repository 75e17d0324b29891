"""The Spark lines pipetrace builds for, and a cache of each line's pyspark (jars + Python).

The table of lines is ``python/pipetrace/resources/spark_lines.json`` (the loader reads the
same file). Each pyspark version is installed once, from PyPI with pip alone, into
``$PIPETRACE_PYSPARK_CACHE/<version>`` (default ``~/.cache/pipetrace/pyspark``), never into
git. Its ``jars/`` are the compile-time classpath of that line's jar
(``build_jar.py --all-lines``) and the directory is the ``PYTHONPATH`` of that line's CI lane
(``.ci/lanes``). Installing is idempotent: a complete cache entry is left as it is::

    python jvm_shim/spark_lines.py install            # every version any line needs
    python jvm_shim/spark_lines.py install 4.0.5      # one version
    python jvm_shim/spark_lines.py path 4.0.5         # where it is (installs if missing)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINES_FILE = HERE.parent / "python" / "pipetrace" / "resources" / "spark_lines.json"
CACHE_ENV = "PIPETRACE_PYSPARK_CACHE"
_DONE = ".pipetrace-complete"  # written last: a cache entry without it is a partial install


def lines() -> list[dict]:
    """The Spark lines of spark_lines.json, lowest first."""
    return json.loads(LINES_FILE.read_text(encoding="utf-8"))["lines"]


def versions() -> list[str]:
    """Every pyspark version a line compiles against or is tested on, in table order."""
    seen: list[str] = []
    for line in lines():
        for version in [line["compile_against"], *line["tested"]]:
            if version not in seen:
                seen.append(version)
    return seen


def cache_root() -> Path:
    """Where the pyspark versions are installed (``$PIPETRACE_PYSPARK_CACHE``)."""
    default = Path.home() / ".cache" / "pipetrace" / "pyspark"
    return Path(os.environ.get(CACHE_ENV) or default)


def _py4j_requirement(target: Path) -> str:
    # pyspark pins the py4j its gateway speaks (3.5: 0.10.9.7, 4.x: 0.10.9.9); read the pin
    # from the installed metadata instead of writing it down a second time.
    for meta in target.glob("pyspark-*.dist-info/METADATA"):
        for row in meta.read_text(encoding="utf-8").splitlines():
            match = re.match(r"Requires-Dist:\s*(py4j\s*[^;]*)$", row.strip())
            if match:
                return match.group(1).replace(" ", "")
    raise RuntimeError(f"no py4j requirement in the pyspark metadata under {target}")


def install(version: str, *, quiet: bool = False) -> Path:
    """Install ``pyspark==version`` and its py4j into the cache (if missing); return the dir.

    Example::

        >>> install("4.0.5")  # doctest: +SKIP
        PosixPath('/root/.cache/pipetrace/pyspark/4.0.5')
    """
    target = cache_root() / version
    if (target / _DONE).is_file():
        return target
    if target.exists():
        shutil.rmtree(target)  # a partial install from an interrupted run
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
           "--target", str(target)]
    if quiet:
        pip.append("--quiet")
    subprocess.run([*pip, f"pyspark=={version}"], check=True)
    subprocess.run([*pip, _py4j_requirement(target)], check=True)
    if not any((target / "pyspark" / "jars").glob("spark-sql_*.jar")):
        raise RuntimeError(f"pyspark {version} installed to {target} has no Spark jars")
    (target / _DONE).write_text(f"{time.monotonic() - started:.1f}s\n", encoding="utf-8")
    print(f"pyspark {version}: installed in {time.monotonic() - started:.1f}s -> {target}",
          file=sys.stderr)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install pyspark versions into the cache")
    inst.add_argument("versions", nargs="*", help="default: every version of every line")
    where = sub.add_parser("path", help="print a version's cache dir (installing it if missing)")
    where.add_argument("version")
    sub.add_parser("list", help="print every version the lines need")
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(versions()))
    elif args.command == "path":
        print(install(args.version, quiet=True))
    else:
        for version in args.versions or versions():
            print(install(version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
