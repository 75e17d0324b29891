"""Package build: compiles the JVM shim (jvm_shim/) into the package as jars/pipetrace-shim.jar.

Everything else is declared in pyproject.toml.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "jvm_shim"))
from build_jar import BuildError, build_jar  # noqa: E402


class BuildPyWithJar(build_py):
    """build_py that also compiles the listener jar with javac."""

    def run(self) -> None:
        super().run()
        # Editable installs import from the source tree, so the jar must land there.
        if getattr(self, "editable_mode", False):
            out = ROOT / "python" / "pipetrace" / "jars"
        else:
            out = Path(self.build_lib) / "pipetrace" / "jars"
        try:
            build_jar(out, self.distribution.get_version())
        except BuildError as exc:
            sys.exit(f"error: cannot build pipetrace: {exc}")


setup(cmdclass={"build_py": BuildPyWithJar})
