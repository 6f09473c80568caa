"""The service bench: the real service and the echo ceiling, side by side, under the same
load from a separate load-generator process.

Both servers run for the whole bench; each load is run against the echo and then against
the service, back to back (in full runs twice over, keeping each server's best), so drift
on a shared machine hits both alike. The latency load is run three times over in full
runs, alternating, and each server's run with the median p99 is reported beside every
run's p99: a single run's tail swings with whatever else the host does. Server CPU comes
from /proc (every thread of the process), RSS from /proc too.

On a machine with two CPUs or more, the servers run on CPU 0 and the load generator on
CPU 1, so neither is moved onto the other's CPU mid-run. In trials, unpinned, the json
service's p99 was 75 and 105 ms; pinned, 47 and 49 ms.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import profile

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Load:
    name: str
    kind: str  # "closed" or "open"
    streams: int
    channels: int
    window: int = 0
    rate: float = 0.0


@dataclass(frozen=True)
class ServiceConfig:
    throughput: tuple[Load, ...]
    latency: Load
    processors: tuple[str, ...]
    warmup: float
    duration: float
    latency_warmup: float
    latency_duration: float
    profile_load: Load
    profile_seconds: float
    rounds: int = 1  # throughput runs per server and case; the best one is reported
    latency_rounds: int = 1  # latency runs per server; the median p99 one is reported
    profile: bool = True
    profile_dir: Path | None = None  # where to keep py-spy's raw output; else a temp dir
    event_loop: str = "auto"  # the loop of every process: both servers and the load generator


_THROUGHPUT = (
    Load("1 stream, pipelined", "closed", streams=1, channels=1, window=16),
    Load("100 streams / 8 channels", "closed", streams=100, channels=8, window=4),
    Load("1,000 streams / 8 channels", "closed", streams=1000, channels=8, window=2),
)
_LATENCY = Load("1,000 streams x 3 msgs/s / 8 channels", "open", 1000, 8, rate=3.0)

FULL = ServiceConfig(
    throughput=_THROUGHPUT,
    latency=_LATENCY,
    processors=("text", "json"),
    warmup=2.0,
    duration=6.0,
    latency_warmup=3.0,
    latency_duration=12.0,
    profile_load=_THROUGHPUT[1],
    profile_seconds=10.0,
    rounds=2,
    latency_rounds=3,
)

QUICK = ServiceConfig(
    throughput=_THROUGHPUT,
    latency=_LATENCY,
    processors=("text", "json"),
    warmup=0.5,
    duration=1.5,
    latency_warmup=1.0,
    latency_duration=2.0,
    profile_load=_THROUGHPUT[1],
    profile_seconds=2.0,
)


SERVER_CPU, LOADGEN_CPU = 0, 1


def _on_cpu(cpu: int) -> Callable[[], None] | None:
    """A preexec_fn that pins the child to `cpu`, or None where that cannot be done."""
    if not hasattr(os, "sched_setaffinity") or cpu not in os.sched_getaffinity(0):
        return None
    if len(os.sched_getaffinity(0)) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class ServerProcess:
    """A server child process that prints `... listening on HOST:PORT` when it serves."""

    def __init__(self, name: str, command: list[str], event_loop: str) -> None:
        self.name = name
        self.command = [*command, "--event-loop", event_loop]
        self.event_loop = event_loop
        self.proc: subprocess.Popen | None = None
        self.address = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO,
            preexec_fn=_on_cpu(SERVER_CPU),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if " listening on " in line:
                self.address = line.strip().rsplit(" ", 1)[1]
                return
        self.stop()
        raise RuntimeError(f"{self.name} did not report its address: {' '.join(self.command)}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU of every thread of the process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def memory(self) -> dict:
        """Current and peak resident set size, in MiB."""
        status = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        values = {}
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return {"rss_mib": values.get("VmRSS"), "peak_rss_mib": values.get("VmHWM")}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def echo_server(event_loop: str = "auto") -> ServerProcess:
    command = [sys.executable, "-m", "bench.echo_server", "--port", "0"]
    return ServerProcess("echo", command, event_loop)


def stall_floor_server(event_loop: str = "auto") -> ServerProcess:
    command = [sys.executable, "-m", "bench.stall_floor", "--port", "0"]
    return ServerProcess("floor", command, event_loop)


def chunkwise_server(event_loop: str = "auto") -> ServerProcess:
    command = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "0"]
    command += ["--max-ids", "1000000"]
    return ServerProcess("service", command, event_loop)


def _loadgen_command(
    server: ServerProcess, load: Load, processor: str, warmup: float, duration: float
) -> list[str]:
    command = [sys.executable, "-m", "bench.loadgen", "--target", server.address]
    command += ["--kind", load.kind, "--streams", str(load.streams)]
    command += ["--channels", str(load.channels), "--processor", processor]
    command += ["--warmup", str(warmup), "--duration", str(duration)]
    command += ["--tag", f"{processor}-{uuid.uuid4().hex[:8]}"]
    # The load generator's own loop is part of every latency it measures.
    command += ["--event-loop", server.event_loop]
    if load.kind == "closed":
        command += ["--window", str(load.window)]
    else:
        command += ["--rate", str(load.rate)]
    return command


def run_load(
    server: ServerProcess,
    load: Load,
    processor: str,
    warmup: float,
    duration: float,
    *,
    profile_to: Path | None = None,
) -> dict:
    """One load-generator run against one server; adds the server's CPU and memory."""
    command = _loadgen_command(server, load, processor, warmup, duration)
    log.info("%s: %s, %s", server.name, load.name, processor)
    cpu_before = server.cpu_seconds()
    started = time.monotonic()
    loadgen = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, text=True, preexec_fn=_on_cpu(LOADGEN_CPU)
    )
    spy = None
    if profile_to is not None:
        time.sleep(warmup + 0.5)
        spy = profile.record(server.pid, duration - 1, profile_to, native=True)
    try:
        out, _ = loadgen.communicate(timeout=warmup + duration + 120)
    except subprocess.TimeoutExpired:
        loadgen.kill()
        loadgen.communicate()
        raise
    finally:
        if spy is not None:
            spy_out, _ = spy.communicate(timeout=60)
            log.info("py-spy: %s", spy_out.strip().splitlines()[-1:] if spy_out else "")
    if loadgen.returncode != 0:
        raise RuntimeError(f"load generator failed ({loadgen.returncode}): {' '.join(command)}")
    result = json.loads(out.strip().splitlines()[-1])
    cpu = server.cpu_seconds() - cpu_before
    result["wall_s"] = time.monotonic() - started
    result["server_cpu_s"] = cpu
    responses = result["responses"]
    result["server_cpu_s_per_1000_msgs"] = cpu / responses * 1000 if responses else None
    result.update(server.memory())
    return result


def run(config: ServiceConfig) -> dict:
    started = time.perf_counter()
    servers = {
        "echo": echo_server(config.event_loop),
        "service": chunkwise_server(config.event_loop),
    }
    results: dict = {"throughput": [], "latency": [], "profiles": {}}
    results["event_loop"] = config.event_loop
    try:
        for server in servers.values():
            server.start()
        results["addresses"] = {name: s.address for name, s in servers.items()}
        for load in config.throughput:
            for processor in config.processors:
                runs = _alternating_runs(
                    servers, config.rounds, load, processor, config.warmup, config.duration
                )
                row: dict = {"load": load.name, "processor": processor}
                for name, server_runs in runs.items():
                    # Other work on a shared machine only ever slows a run down.
                    row[name] = max(server_runs, key=lambda r: r["msgs_per_s"])
                    row[name]["all_msgs_per_s"] = [r["msgs_per_s"] for r in server_runs]
                results["throughput"].append(row)
        for processor in config.processors:
            runs = _alternating_runs(
                servers,
                config.latency_rounds,
                config.latency,
                processor,
                config.latency_warmup,
                config.latency_duration,
            )
            row = {"load": config.latency.name, "processor": processor}
            for name, server_runs in runs.items():
                row[name] = median_p99_run(server_runs)
                row[name]["all_p99_ms"] = [r["p99_ms"] for r in server_runs]
            results["latency"].append(row)
        if config.profile:
            results["profiles"] = _profiles(servers["service"], config)
        results["final_memory"] = {name: s.memory() for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    results["seconds"] = time.perf_counter() - started
    return results


def _alternating_runs(
    servers: dict[str, ServerProcess],
    rounds: int,
    load: Load,
    processor: str,
    warmup: float,
    duration: float,
) -> dict[str, list[dict]]:
    """`rounds` runs of `load` per server, the servers taking turns, so drift on a shared
    machine hits each alike."""
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, server in servers.items():
            runs[name].append(run_load(server, load, processor, warmup, duration))
    return runs


def median_p99_run(runs: list[dict]) -> dict:
    """The run whose p99 is the median (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["p99_ms"])
    return ordered[(len(ordered) - 1) // 2]


def _profiles(server: ServerProcess, config: ServiceConfig) -> dict:
    if profile.py_spy_path() is None:
        return {"error": "py-spy is not installed"}
    profiles = {}
    with tempfile.TemporaryDirectory() as tmp:
        for processor in config.processors:
            output = Path(config.profile_dir or tmp) / f"py-spy-{processor}.txt"
            try:
                load_result = run_load(
                    server,
                    config.profile_load,
                    processor,
                    config.warmup,
                    config.profile_seconds + 1,
                    profile_to=output,
                )
                with output.open() as raw:
                    summary = profile.summarize(profile.parse_raw(raw))
                summary["load"] = config.profile_load.name
                summary["msgs_per_s_while_profiled"] = load_result["msgs_per_s"]
                profiles[processor] = summary
            except (OSError, RuntimeError, ValueError) as exc:
                profiles[processor] = {"error": f"{type(exc).__name__}: {exc}"}
    return profiles
