"""What inputs' identity (issue 12 item 4) costs pipetrace's writer thread, per input size.

Compiles ``benchmarks/java/IdentityCost.java`` against the built listener jar and pyspark's jars
(javac, like the shim itself) and runs it in a plain JVM: synthetic FileStatus objects for 10k
and 100k files (a date-partitioned table on an object store), added to a ``FileSet`` and
fingerprinted (each path redacted, sorted, SHA-256), 5 repetitions, median. No Spark session:
this is the writer thread's share; the listener thread only keeps references to the scan.

    python -m benchmarks.input_identity            # prints one JSON line per size
    python -m benchmarks.input_identity 1000 10000 100000 1000000
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pyspark

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    sizes = (argv if argv is not None else sys.argv[1:]) or ["10000", "100000"]
    jars = Path(pyspark.__file__).parent / "jars"
    shim = sorted((ROOT / "python" / "pipetrace" / "jars").glob("pipetrace-shim-spark4*.jar"))
    if not shim:
        print("build the listener jar first: python jvm_shim/build_jar.py "
              "--out python/pipetrace/jars", file=sys.stderr)
        return 2
    classpath = f"{shim[-1]}:{jars}/*"
    with tempfile.TemporaryDirectory(prefix="pipetrace-identity-bench-") as out:
        subprocess.run(["javac", "-nowarn", "-cp", classpath, "-d", out,
                        str(ROOT / "benchmarks" / "java" / "IdentityCost.java")], check=True)
        done = subprocess.run(["java", "-Xmx2g", "-cp", f"{out}:{classpath}", "IdentityCost", "5",
                               *sizes], check=True, capture_output=True, text=True)
    print(done.stdout, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
