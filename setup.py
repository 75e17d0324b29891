"""Package build: compiles the JVM shim (jvm_shim/) into the package's jars/ directory.

By default the jar of the installed pyspark's Spark line is built against that pyspark (pip
alone, no download). A release wheel carries every line's jar:
``PIPETRACE_SPARK_LINES=all pip wheel .`` (or ``python -m build``) builds each line against the
lowest pyspark of the line, installed from PyPI into the cache of jvm_shim/spark_lines.py.
Everything else is declared in pyproject.toml.
"""

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "jvm_shim"))
from build_jar import BuildError, build_all_lines, build_jar  # noqa: E402


class BuildPyWithJar(build_py):
    """build_py that also compiles the listener jar(s) with javac."""

    def run(self) -> None:
        super().run()
        # Editable installs import from the source tree, so the jar must land there.
        if getattr(self, "editable_mode", False):
            out = ROOT / "python" / "pipetrace" / "jars"
        else:
            out = Path(self.build_lib) / "pipetrace" / "jars"
        try:
            if os.environ.get("PIPETRACE_SPARK_LINES", "").lower() == "all":
                build_all_lines(out, self.distribution.get_version())
            else:
                build_jar(out, self.distribution.get_version())
        except BuildError as exc:
            sys.exit(f"error: cannot build pipetrace: {exc}")


setup(cmdclass={"build_py": BuildPyWithJar})
