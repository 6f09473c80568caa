"""What the interop tests (tests/test_interop_*.py) share: a client that cannot run here skips,
except under CHUNKWISE_REQUIRE_INTEROP=1 (CI), where that is a failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest
from grpc_server import ServerProcess

REQUIRE_INTEROP = "CHUNKWISE_REQUIRE_INTEROP"


def cannot_run(client: str, reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_INTEROP) == "1":
        pytest.fail(f"{REQUIRE_INTEROP}=1 and the {client} interop test cannot run: {reason}")
    pytest.skip(reason)


def run_client_against(server: ServerProcess, argv: list[str], cwd: Path | None = None) -> str:
    """Runs a client (`argv`) with CHUNKWISE_ADDRESS set to `server`, then stops the server;
    asserts that both exit 0 and returns the client's stdout."""
    result = subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, "CHUNKWISE_ADDRESS": server.address},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    server.terminate()
    status, _, server_stderr = server.wait()
    assert result.returncode == 0, (
        f"{argv[0]} exited {result.returncode}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}\n--- server stderr\n{server_stderr}"
    )
    assert status == 0, f"the server exited {status} on SIGTERM:\n{server_stderr}"
    return result.stdout
