"""Compile the pipetrace JVM shim into one jar per Spark line, with javac only (no Maven, no Ivy).

A line's jar is ``src/main/java`` (shared) plus ``src/<line>/java`` (its compatibility layer),
compiled against the jars inside a ``pyspark`` wheel; the lines are
``python/pipetrace/resources/spark_lines.json``. Run by the package build (setup.py) and usable
on its own::

    # the installed pyspark's line, against the installed pyspark (what `pip install .` does)
    python jvm_shim/build_jar.py --out python/pipetrace/jars
    # every line, each against the lowest pyspark of its line, installed from PyPI into the
    # cache of jvm_shim/spark_lines.py if missing (what a release wheel ships)
    python jvm_shim/build_jar.py --all-lines --out python/pipetrace/jars
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import spark_lines  # noqa: E402 - the line table and the pyspark cache, next to this file

SOURCES = HERE / "src" / "main" / "java"
RESOURCES = HERE.parent / "python" / "pipetrace" / "resources"
JAVA_RELEASE = "17"


class BuildError(RuntimeError):
    """The shim could not be built; the message says what to install or fix."""


def _pyspark_jars() -> tuple[Path, str]:
    try:
        import pyspark
    except ImportError as exc:  # pragma: no cover - pyspark is a build requirement
        raise BuildError("pyspark is not installed in the build environment; "
                         "it is listed in [build-system].requires of pyproject.toml") from exc
    jars = Path(pyspark.__file__).resolve().parent / "jars"
    if not any(jars.glob("spark-sql_*.jar")):
        raise BuildError(f"no Spark jars under {jars}: install pyspark from its wheel/sdist "
                         "(pip install 'pyspark>=3.5,<5'), not a Spark Connect-only client")
    return jars, pyspark.__version__


def line_of(spark_version: str) -> dict:
    """The spark_lines.json entry whose Spark range holds ``spark_version``."""
    key = _version_key(spark_version)
    for line in spark_lines.lines():
        if _version_key(line["spark_min"]) <= key < _version_key(line["spark_below"]):
            return line
    supported = ", ".join(f"{x['spark_min']} <= Spark < {x['spark_below']}"
                          for x in spark_lines.lines())
    raise BuildError(f"pyspark {spark_version} is not a Spark line pipetrace builds for "
                     f"({supported}): install a supported pyspark, e.g. pip install 'pyspark>=4,<5'")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def _javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(java_home) / "bin" / "javac")] if java_home else []
    found = shutil.which("javac")
    if found:
        candidates.append(found)
    for javac in candidates:
        if Path(javac).exists():
            return javac
    raise BuildError(
        "javac (a JDK 17 or newer) is required to build pipetrace's JVM listener, and none was "
        "found on PATH or in JAVA_HOME. Install a JDK, e.g. `apt-get install openjdk-17-jdk-headless` "
        "or `brew install openjdk@17`, then run the install again.")


def build_jar(out_dir: Path, version: str, *, jars: Path | None = None,
              spark_version: str | None = None) -> Path:
    """Compile the line of ``spark_version`` against ``jars`` into ``out_dir``; return the jar.

    Without ``jars``, the installed pyspark's jars and version are used.
    """
    if jars is None:
        jars, spark_version = _pyspark_jars()
    assert spark_version is not None
    line = line_of(spark_version)
    javac = _javac()
    line_sources = HERE / "src" / line["line"] / "java"
    sources = sorted(str(p) for root in (SOURCES, line_sources) for p in root.rglob("*.java"))
    if not sources:
        raise BuildError(f"no Java sources under {SOURCES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipetrace-javac-") as tmp:
        classes = Path(tmp) / "classes"
        cmd = [javac, "--release", JAVA_RELEASE, "-encoding", "UTF-8", "-nowarn",
               "-Xlint:none", "-cp", str(jars / "*"), "-d", str(classes), *sources]
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError("javac failed to compile the pipetrace shim:\n"
                             + result.stdout + result.stderr)
        jar = out_dir / line["jar"]
        # Spark-Line and Scala-Version are what the loader checks; Specification-Title is the
        # line as the JVM sees it (SparkCompat names it when it refuses a Spark).
        manifest = (
            "Manifest-Version: 1.0\n"
            f"Implementation-Title: pipetrace-shim\n"
            f"Implementation-Version: {version}\n"
            f"Specification-Title: {line['line']}\n"
            f"Spark-Line: {line['line']}\n"
            f"Scala-Version: {line['scala']}\n"
            f"Spark-Version: {spark_version}\n"
            f"Created-By: javac --release {JAVA_RELEASE}\n"
        )
        with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("META-INF/MANIFEST.MF", manifest)
            for path in sorted(classes.rglob("*.class")):
                zf.write(path, path.relative_to(classes).as_posix())
            for res in sorted(RESOURCES.glob("*.json")):
                zf.write(res, f"pipetrace/{res.name}")
            zf.writestr("pipetrace/build.properties",
                        f"pipetrace.version={version}\nspark.version={spark_version}\n"
                        f"spark.line={line['line']}\n")
    return jar


def build_all_lines(out_dir: Path, version: str) -> list[Path]:
    """Build every line's jar, each against the pyspark its line compiles against (cached).

    Example::

        >>> [p.name for p in build_all_lines(Path("jars"), "0.1.0")]  # doctest: +SKIP
        ['pipetrace-shim-spark35_2.12.jar', 'pipetrace-shim-spark4_2.13.jar']
    """
    built = []
    for line in spark_lines.lines():
        target = spark_lines.install(line["compile_against"], quiet=True)
        built.append(build_jar(out_dir, version, jars=target / "pyspark" / "jars",
                               spark_version=line["compile_against"]))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "python" / "pipetrace" / "jars")
    parser.add_argument("--version", default="0.0.0+dev")
    parser.add_argument("--all-lines", action="store_true",
                        help="build every Spark line's jar against its cached pyspark")
    args = parser.parse_args(argv)
    try:
        if args.all_lines:
            for jar in build_all_lines(args.out, args.version):
                print(jar)
        else:
            print(build_jar(args.out, args.version))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
