"""What the interop tests (tests/test_interop_*.py) share: a client that cannot run here skips,
except under CHUNKWISE_REQUIRE_INTEROP=1 (CI), where that is a failure."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_INTEROP = "CHUNKWISE_REQUIRE_INTEROP"


def cannot_run(client: str, reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_INTEROP) == "1":
        pytest.fail(f"{REQUIRE_INTEROP}=1 and the {client} interop test cannot run: {reason}")
    pytest.skip(reason)
