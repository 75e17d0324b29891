"""Compile the pipetrace JVM shim into a jar, with javac only (no Maven, no Ivy).

The classpath is the jars inside the installed ``pyspark`` wheel, so the shim is built against
exactly the Spark the package depends on. Run by the package build (setup.py) and usable on
its own::

    python jvm_shim/build_jar.py --out python/pipetrace/jars
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
SOURCES = HERE / "src" / "main" / "java"
RESOURCES = HERE.parent / "python" / "pipetrace" / "resources"
JAR_NAME = "pipetrace-shim.jar"
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
                         "(pip install 'pyspark>=4,<5'), not a Spark Connect-only client")
    return jars, pyspark.__version__


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


def build_jar(out_dir: Path, version: str) -> Path:
    """Compile jvm_shim/ and write ``out_dir/pipetrace-shim.jar``; return its path."""
    jars, spark_version = _pyspark_jars()
    javac = _javac()
    sources = sorted(str(p) for p in SOURCES.rglob("*.java"))
    if not sources:
        raise BuildError(f"no Java sources under {SOURCES}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pipetrace-javac-") as tmp:
        classes = Path(tmp) / "classes"
        cmd = [javac, "--release", JAVA_RELEASE, "-encoding", "UTF-8", "-nowarn",
               "-Xlint:none", "-cp", str(jars / "*"), "-d", str(classes), *sources]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError("javac failed to compile the pipetrace shim:\n"
                             + result.stdout + result.stderr)
        jar = out_dir / JAR_NAME
        manifest = (
            "Manifest-Version: 1.0\n"
            f"Implementation-Title: pipetrace-shim\n"
            f"Implementation-Version: {version}\n"
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
                        f"pipetrace.version={version}\nspark.version={spark_version}\n")
    return jar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "python" / "pipetrace" / "jars")
    parser.add_argument("--version", default="0.0.0+dev")
    args = parser.parse_args(argv)
    try:
        print(build_jar(args.out, args.version))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
