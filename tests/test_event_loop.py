"""The event loop a process runs on: uvloop where installed, asyncio's own otherwise."""

from __future__ import annotations

import asyncio
import sys

import pytest

from server import cli
from server.event_loop import EventLoopError, loop_factory, run, running_loop_kind


@pytest.fixture
def without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import uvloop` raise ImportError.
    monkeypatch.setitem(sys.modules, "uvloop", None)


async def _kind_and(value: int) -> tuple[str, int]:
    await asyncio.sleep(0)
    return running_loop_kind(), value


@pytest.mark.parametrize(
    ("name", "kind"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")]
)
def test_run_gives_the_coroutines_value_on_the_loop_asked_for(name: str, kind: str) -> None:
    assert run(lambda: _kind_and(7), name) == (kind, 7)


def test_auto_falls_back_to_asyncio_without_uvloop(without_uvloop: None) -> None:
    assert loop_factory("auto") is asyncio.new_event_loop
    assert run(lambda: _kind_and(1), "auto") == ("asyncio", 1)


def test_uvloop_asked_for_but_missing_is_refused_before_the_coroutine_exists(
    without_uvloop: None,
) -> None:
    made: list[int] = []

    def main():
        made.append(1)
        return _kind_and(1)

    with pytest.raises(EventLoopError, match="uvloop is not installed"):
        run(main, "uvloop")
    assert made == []


def test_an_unknown_loop_is_refused_naming_the_choices() -> None:
    with pytest.raises(EventLoopError, match="auto, uvloop, asyncio"):
        loop_factory("tokio")


def test_the_server_exits_1_with_a_message_when_uvloop_is_missing(
    without_uvloop: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--port", "0", "--event-loop", "uvloop"]) == 1
    captured = capsys.readouterr()
    assert "uvloop is not installed" in captured.err
    assert captured.out == ""
