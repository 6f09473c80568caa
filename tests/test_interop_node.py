"""A Node client (tests/interop/node, @grpc/grpc-js) passes its tests against `python -m server`.

Without node or npm, or when `npm ci` cannot reach the registry, the test skips and says why;
with CHUNKWISE_REQUIRE_INTEROP=1 such a skip is a failure instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from grpc_server import ServerProcess
from interop_support import cannot_run, run_client_against

REPO = Path(__file__).resolve().parent.parent
NODE_DIR = REPO / "tests" / "interop" / "node"
LOCKFILE = NODE_DIR / "package-lock.json"
#: npm ci writes it last; older than package-lock.json means node_modules is stale.
INSTALLED = NODE_DIR / "node_modules" / ".package-lock.json"
#: What npm prints when the registry cannot be reached (as opposed to a broken lockfile).
OFFLINE = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH"
    r"|network request to .* failed|network connectivity"
)
#: Node's own test runner (`node --test`) needs node 18 or later.
MIN_NODE = 18


def _cannot_run(reason: str) -> NoReturn:
    cannot_run("Node", reason)


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _cannot_run(f"{'node' if node is None else 'npm'} is not on PATH")
    assert node is not None and npm is not None
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE:
        _cannot_run(f"node {version} is older than {MIN_NODE}, which `node --test` needs")
    return node, npm


def _install(npm: str) -> None:
    """`npm ci` when node_modules is missing or older than package-lock.json."""
    if INSTALLED.exists() and INSTALLED.stat().st_mtime >= LOCKFILE.stat().st_mtime:
        return
    try:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        _cannot_run("npm ci did not finish within 10 minutes (is the npm registry reachable?)")
    output = result.stdout + result.stderr
    if result.returncode != 0:
        if OFFLINE.search(output):
            errors = [line for line in output.splitlines() if line.startswith("npm error")]
            _cannot_run("npm ci cannot reach the npm registry: " + "; ".join(errors[:3]))
        pytest.fail(f"npm ci failed with exit {result.returncode}:\n{output}")
    INSTALLED.touch()


def test_the_node_client_passes_its_tests_against_the_server(
    server_process: Callable[..., ServerProcess],
) -> None:
    node, npm = _tools()
    _install(npm)
    # node --test finds *.test.mjs under the folder (TAP, whose summary is read below); the
    # ids carry a random suffix.
    stdout = run_client_against(
        server_process(), [node, "--test", "--test-reporter=tap"], cwd=NODE_DIR
    )
    assert re.search(r"^# pass [1-9]", stdout, re.MULTILINE), stdout
    assert re.search(r"^# fail 0$", stdout, re.MULTILINE), stdout
