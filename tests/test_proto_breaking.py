"""`buf breaking`, as `make lint` runs it, fails when a field of protos/ is renumbered, and
passes when nothing changed: a copy of protos/ in a repository of its own, two commits."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUF = Path(sys.executable).parent / "buf"
PROTO = Path("protos/chunkwise/v1/streaming.proto")
#: The Makefile's BREAKING_AGAINST, without make's escaping of '#'.
AGAINST = ".git#ref=HEAD~1,subdir=protos"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _breaking_after(tmp_path: Path, edit) -> subprocess.CompletedProcess[str]:
    shutil.copytree(REPO / "protos", tmp_path / "protos", ignore=shutil.ignore_patterns("*.py*"))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "protos")
    _git(tmp_path, "commit", "-q", "-m", "before")
    proto = tmp_path / PROTO
    proto.write_text(edit(proto.read_text()))
    _git(tmp_path, "commit", "-q", "--allow-empty", "-am", "after")
    return subprocess.run(
        [BUF, "breaking", "protos", "--against", AGAINST],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not on PATH")
def test_a_renumbered_field_is_a_breaking_change(tmp_path: Path) -> None:
    old = "  string chunk = 2;"
    assert old in (REPO / PROTO).read_text()
    result = _breaking_after(tmp_path, lambda text: text.replace(old, "  string chunk = 99;", 1))
    assert result.returncode != 0
    assert 'field "2" with name "chunk"' in result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not on PATH")
def test_an_unchanged_proto_is_not(tmp_path: Path) -> None:
    result = _breaking_after(tmp_path, lambda text: text)
    assert result.returncode == 0, result.stdout + result.stderr
