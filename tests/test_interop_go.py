"""A Go client (tests/interop/go, grpc-go 1.33 from Debian) passes its checks against
`python -m server`.

`make interop-go` installs Debian's Go, protoc and grpc-go packages when one is missing (as
root, with apt-get), generates the stubs from protos/ and builds the client. Where they are
missing and cannot be installed, the test skips and says why; with CHUNKWISE_REQUIRE_INTEROP=1
such a skip is a failure instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from grpc_server import ServerProcess
from interop_support import cannot_run, run_client_against

REPO = Path(__file__).resolve().parent.parent
#: Where the Makefile's interop-go target puts the client.
GO_CLIENT = REPO / "build" / "interop-go" / "bin" / "chunkwise-interop"
#: apt-get update and install of about 100 MB on a slow mirror, then a cold build of grpc-go.
INSTALL_SECONDS = 900


def _make(make: str, target: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [make, "--no-print-directory", target],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INSTALL_SECONDS,
        )
    except subprocess.TimeoutExpired:
        cannot_run("Go", f"make {target} did not finish within {INSTALL_SECONDS} s")


def _build() -> None:
    make = shutil.which("make")
    if make is None:
        cannot_run("Go", "make is not on PATH")
    assert make is not None
    deps = _make(make, "interop-go-deps")
    if deps.returncode != 0:
        output = (deps.stdout + deps.stderr).strip().splitlines()
        cannot_run(
            "Go",
            "the Go toolchain and grpc-go are missing and could not be installed from Debian's"
            " packages (make interop-go-deps): " + " | ".join(output[-3:]),
        )
    build = _make(make, "interop-go")
    assert build.returncode == 0, (
        f"make interop-go exited {build.returncode}\n--- stdout\n{build.stdout}"
        f"\n--- stderr\n{build.stderr}"
    )


@pytest.mark.timeout(INSTALL_SECONDS + 300)
def test_the_go_client_passes_its_checks_against_the_server(
    server_process: Callable[..., ServerProcess],
) -> None:
    _build()
    stdout = run_client_against(server_process(), [str(GO_CLIENT)])
    assert re.search(r"^go client: [1-9]\d* passed, 0 failed$", stdout, re.M), stdout
