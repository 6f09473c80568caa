"""The generated Python stubs match what protoc makes from protos/ today."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STUBS = ("streaming_pb2.py", "streaming_pb2.pyi", "streaming_pb2_grpc.py")


def test_the_stubs_are_regenerated_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iprotos",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            "protos/chunkwise/v1/streaming.proto",
        ],
        cwd=REPO,
        check=True,
        timeout=60,
    )
    stale = []
    for name in STUBS:
        generated = REPO / "protos" / "chunkwise" / "v1" / name
        fresh = tmp_path / "chunkwise" / "v1" / name
        assert fresh.exists(), f"protoc made no {name}"
        if not generated.exists():
            pytest.fail(f"{generated} is missing: run `make protos`")
        if generated.read_bytes() != fresh.read_bytes():
            stale.append(name)
    assert not stale, f"stale stubs {stale}: run `make protos`"
