"""Two real runs of one agent-style script, shared by tests/test_report.py and tests/test_diff.py
(a session fixture: two `pipetrace run`s in subprocesses for both modules), plus the truth the
tests compare the report and the diff with: the input data is written here with pyarrow, so
every count below is computed here, in Python, not read back from pipetrace.

Run A: MIN_AGE 18. Between the runs the test rewrites `orders` (other rows); run B: MIN_AGE 21
and one more step (the `if variant == "b"` line). Everything else is the same.

Also the headless Chromium the report tests drive (Debian's `chromium`), and a small PNG reader.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from tests.test_faults import env_for

COUNTRIES = ["US", "FR", "DE", "JP", "BR"]
PROMOS_PER_COUNTRY = 3

SCRIPT = '''
import sys
from pyspark.sql import SparkSession, functions as F

data, out, variant = sys.argv[1], sys.argv[2], sys.argv[3]
MIN_AGE = 18 if variant == "a" else 21
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2").config("spark.sql.ansi.enabled", "true")
         .getOrCreate())
people = spark.read.parquet(data + "/people")
orders = spark.read.parquet(data + "/orders")
promos = spark.read.parquet(data + "/promos")
adults = people.filter(F.col("age") >= MIN_AGE)                      # L_ADULTS
print("adults", adults.count())                                      # A_ADULTS
big = orders.filter(F.col("amount") > 40)                            # L_BIG
print("big", big.count())                                            # A_BIG
offers = adults.join(promos, "country")                              # L_OFFERS
print("offers", offers.count())                                      # A_OFFERS
spend = orders.join(people, "person_id").filter(F.col("amount") > F.col("age"))  # L_SPEND
print("spend", spend.count())                                        # A_SPEND
summary = adults.groupBy("country").agg(F.count("*").alias("n"))     # L_SUMMARY
summary.write.mode("overwrite").parquet(out)                         # A_WRITE
if variant == "b":
    print("fr", people.filter(F.col("country") == "FR").count())     # A_ADDED
try:
    people.select(F.col("country").cast("int")).collect()            # A_FAIL
except Exception as exc:
    print("failed", type(exc).__name__)
print("written", spark.read.parquet(out).count())                    # A_READBACK
'''


def line_of(marker: str) -> int:
    """The script's line holding ``# marker`` (1-based, as call sites count)."""
    lines = SCRIPT.splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))


def people_data() -> dict[str, list[Any]]:
    n = 600
    return {"person_id": list(range(n)), "age": [(i * 7) % 90 for i in range(n)],
            "country": [COUNTRIES[i % 5] for i in range(n)]}


def orders_data(variant: str) -> dict[str, list[Any]]:
    n, step = (1500, 13) if variant == "a" else (1100, 17)
    # person ids up to 699: orders of ids 600-699 have no person
    return {"order_id": list(range(n)), "person_id": [i % 700 for i in range(n)],
            "amount": [float((i * step) % 100) for i in range(n)]}


def promos_data() -> dict[str, list[Any]]:
    return {"country": [c for c in COUNTRIES for _ in range(PROMOS_PER_COUNTRY)],
            "promo": list(range(len(COUNTRIES) * PROMOS_PER_COUNTRY))}


def truth(variant: str) -> dict[str, int]:
    """What each action of the script returns on this data, computed here."""
    people, orders = people_data(), orders_data(variant)
    min_age = 18 if variant == "a" else 21
    age = dict(zip(people["person_id"], people["age"], strict=True))
    adults = [i for i, a in age.items() if a >= min_age]
    country = dict(zip(people["person_id"], people["country"], strict=True))
    joined = [(p, amt) for p, amt in zip(orders["person_id"], orders["amount"], strict=True)
              if p in age]
    return {
        "people": len(age), "orders": len(orders["order_id"]),
        "adults": len(adults), "big": sum(1 for a in orders["amount"] if a > 40),
        "offers": len(adults) * PROMOS_PER_COUNTRY,
        "spend_joined": len(joined), "spend": sum(1 for p, amt in joined if amt > age[p]),
        "summary": len({country[i] for i in adults}),
        "fr": sum(1 for c in people["country"] if c == "FR"),
    }


def write_inputs(data: Path, variant: str) -> None:
    for name, table in (("people", people_data()), ("orders", orders_data(variant)),
                        ("promos", promos_data())):
        if name != "orders" and (data / name).exists():
            continue  # unchanged between the runs: the same file, the same identity
        shutil.rmtree(data / name, ignore_errors=True)
        (data / name).mkdir(parents=True)
        pq.write_table(pa.table(table), data / name / "part-0.parquet")


@dataclass
class Runs:
    home: Path
    table: Path
    env: dict[str, str]
    data: Path
    out: Path
    script: Path
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipetrace", *args, "--table",
                               str(self.table)], env=self.env, text=True, capture_output=True,
                              timeout=300, check=False)

    def step_at(self, run_id: str, marker: str) -> dict[str, Any]:
        site = f"{self.script}:{line_of(marker)}"
        [row] = [r for r in self.steps[run_id] if r["call_site"] == site]
        return row


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Runs "run-a" and "run-b" of SCRIPT, captured by `pipetrace run` into one table."""
    root = tmp_path_factory.mktemp("report_runs")
    runs = Runs(home=root / "home", table=root / "home" / "pipeline_steps",
                env=env_for(root / "home"), data=root / "data", out=root / "out",
                script=root / "agent_job.py")
    runs.script.write_text(SCRIPT)
    for variant in ("a", "b"):
        write_inputs(runs.data, variant)
        done = subprocess.run(
            [sys.executable, "-m", "pipetrace", "run", "--run-id", f"run-{variant}",
             str(runs.script), str(runs.data), str(runs.out), variant],
            env=runs.env, text=True, capture_output=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    rows = DeltaTable(str(runs.table)).to_pyarrow_table().to_pylist()
    for run_id in ("run-a", "run-b"):
        runs.steps[run_id] = sorted((r for r in rows if r["run_id"] == run_id),
                                    key=lambda r: r["seq"])
    return runs


# --- headless Chromium ------------------------------------------------------------------

def chromium() -> str:
    """The Chromium binary; fails (not skips) with how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("the report tests open the HTML in headless Chromium, which is not on PATH: "
                    "install Debian's package with `apt-get install -y chromium`")
    return found


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions", *args],
                          text=True, capture_output=True, timeout=120, check=False)


def dump_dom(page: Path) -> str:
    """The DOM Chromium built from ``page``, serialized."""
    done = _chromium("--dump-dom", page.resolve().as_uri())
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    done = _chromium(f"--screenshot={png}", f"--window-size={width},{height}",
                     "--hide-scrollbars", page.resolve().as_uri())
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def all_text(self) -> str:
        return "".join(self.text) + "".join(c.all_text() for c in self.children)

    def find(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants with ``tag`` whose attributes include ``attrs`` (class_: a class)."""
        found = []
        for child in self.children:
            ok = tag is None or child.tag == tag
            for key, value in attrs.items():
                if key == "class_":
                    ok = ok and value in child.attrs.get("class", "").split()
                else:
                    ok = ok and child.attrs.get(key.replace("_", "-")) == value
            if ok:
                found.append(child)
            found.extend(child.find(tag, **attrs))
        return found


_VOID = {"meta", "br", "link", "img", "input", "hr", "rect", "path", "col", "source"}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # Implied end tags, as a browser closes them: a row ends the open cell and row, a cell
        # the open cell (the report leaves them out in long tables).
        closes = {"tr": ("td", "th", "tr"), "td": ("td", "th"), "th": ("td", "th")}.get(tag, ())
        while closes and self.stack[-1].tag in closes:
            self.stack.pop()
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].text.append(data)


def parse(document: str) -> Node:
    tree = _Tree()
    tree.feed(document)
    return tree.root


def read_png(path: Path) -> np.ndarray:
    """Pixels (height, width, channels) of an 8-bit RGB/RGBA PNG, as Chromium writes them."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (2, 6), header
    ch = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * ch)
    out = np.zeros((height, width * ch), dtype=np.int32)
    prev = np.zeros(width * ch, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = (np.cumsum(line.reshape(width, ch), axis=0) & 255).reshape(-1)
        elif kind == 2:
            cur = (line + prev) & 255
        else:
            cur = np.zeros_like(line)
            for x in range(width * ch):
                a = int(cur[x - ch]) if x >= ch else 0
                b = int(prev[x])
                c = int(prev[x - ch]) if x >= ch else 0
                if kind == 3:
                    cur[x] = (line[x] + (a + b) // 2) & 255
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    cur[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out[y] = cur
        prev = cur
    return out.reshape(height, width, ch)[:, :, :3]
