"""Where a server process spends its time: py-spy samples, sorted into a few buckets.

py-spy (`record --format raw`) writes one line per distinct stack, root first, frames
separated by ";" and the sample count last: `main (server/__main__.py:12);... 42`. With
`--native`, C frames appear as `symbol (library.so)`. Samples of threads waiting for work are
counted as idle and left out of the shares, which are of the busy samples.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

# A sample whose stack shows the thread waiting for work is idle, not CPU: native stacks
# include blocked threads (the event loop and grpc's poller in epoll near the leaf, and
# executor workers parked anywhere below their queue's get).
IDLE_LEAF_MARKERS = ("epoll_wait", "EpollSelector.select", "poll (libc")
IDLE_ANYWHERE_MARKERS = ("_queue_SimpleQueue_get",)


def _location(frame: str) -> str:
    """`func (path/file.py:12)` -> `path/file.py`; `sym (lib.so)` -> `lib.so`."""
    _, sep, where = frame.partition(" (")
    return where.rstrip(")").rsplit(":", 1)[0] if sep else ""


_ENTRY_POINTS = ("server/__main__.py", "server/cli.py")


def _frame_bucket(frame: str) -> str | None:
    name = frame.partition(" (")[0]
    where = _location(frame)
    if name in ("take_gil", "drop_gil"):
        return "GIL wait"
    if "acquire_lock" in name or where.endswith("threading.py") and "wait" in name.lower():
        return "locks"
    if (
        "_message." in where
        or "google/protobuf" in where
        or "_pb2" in where
        or name.startswith(("upb_", "PyUpb", "_upb"))
    ):
        return "protobuf"
    if where.startswith("server/engine/") or "/server/engine/" in where:
        return "engine"
    if where.endswith(_ENTRY_POINTS):
        return None  # the root of every main-thread stack: it says nothing
    if where.startswith("server/") or "/server/" in where:
        return "servicer (server/)"
    if "grpc" in where:
        return "grpc (cygrpc, grpc.aio)"
    if "asyncio" in where or where.endswith("selectors.py"):
        return "event loop (asyncio)"
    return None


def parse_raw(lines: Iterable[str]) -> list[tuple[list[str], int]]:
    stacks = []
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        stacks.append((frames.split(";"), int(count)))
    return stacks


_OURS = ("engine", "servicer (server/)")


def bucket_of(frames: list[str]) -> str:
    """The bucket of the frame nearest the leaf that has one: time in a lock taken by the
    engine counts as locks, a protobuf constructor called by the servicer as protobuf."""
    if any(marker in frame for frame in frames[-3:] for marker in IDLE_LEAF_MARKERS) or any(
        marker in frame for frame in frames for marker in IDLE_ANYWHERE_MARKERS
    ):
        return "idle"
    for frame in reversed(frames):
        bucket = _frame_bucket(frame)
        if bucket is not None:
            return bucket
    return "other (interpreter, libc)"


def _python_frame(frame: str) -> bool:
    return ".py:" in frame


def summarize(stacks: list[tuple[list[str], int]], top: int = 15) -> dict:
    """Shares of the busy (non-idle) samples: by bucket (self, as `bucket_of` decides, and
    inclusive: the bucket appears anywhere in the stack), the functions most often the
    innermost Python frame, and the chunkwise functions (server/) most often on the stack."""
    busy = [(frames, count) for frames, count in stacks if bucket_of(frames) != "idle"]
    total = sum(count for _, count in stacks)
    busy_total = sum(count for _, count in busy)
    buckets: collections.Counter[str] = collections.Counter()
    inclusive_bucket: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    for frames, count in busy:
        buckets[bucket_of(frames)] += count
        for bucket in {_frame_bucket(f) for f in frames} - {None}:
            inclusive_bucket[bucket] += count
        leaf = next((f for f in reversed(frames) if _python_frame(f)), frames[-1])
        self_time[_strip_line(leaf)] += count
        for name in {_strip_line(f) for f in frames if _frame_bucket(f) in _OURS}:
            ours[name] += count

    def shares(counter: collections.Counter[str], n: int | None = None) -> list[list]:
        if not busy_total:
            return []
        return [[name, count / busy_total] for name, count in counter.most_common(n)]

    return {
        "samples": total,
        "busy_samples": busy_total,
        "buckets": shares(buckets),
        "inclusive_buckets": shares(inclusive_bucket),
        "top_self": shares(self_time, top),
        "top_inclusive": shares(ours, top),
    }


def _strip_line(frame: str) -> str:
    """`func (path/file.py:123)` -> `func (path/file.py)`: one entry per function."""
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def py_spy_path() -> str | None:
    """py-spy from the same environment as this Python, else from PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def record(
    pid: int, seconds: float, output: Path, *, native: bool, rate: int = 200
) -> subprocess.Popen:
    """Starts py-spy on `pid` for `seconds`; the caller waits on the returned process."""
    command = [
        py_spy_path() or "py-spy",
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    # Native stacks need the process paused while py-spy reads them; Python-only stacks
    # are read without pausing it, which disturbs the run less.
    command.append("--native" if native else "--nonblocking")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
