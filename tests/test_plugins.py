"""Processor discovery: "a Python package that exposes one under the entry-point group
`chunkwise.processors` appears in `ListProcessors`", and one bad package must not stop
the server. In-process, with the entry points faked (tests/test_engine_plugins.py installs
a real package)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from server import plugins as _registry
from server.engine._processors import BUILTIN_PROCESSORS
from server.streams import Streams


@dataclass
class FakeEntryPoint:
    name: str
    target: Any

    def load(self) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


class Echo:
    description = "Says nothing new."

    def __init__(self, chunk_id: str, *, max_json_depth: int = 512) -> None:
        pass

    def process(self, new_text, *, final, complete_text):
        return None


class Undescribed(Echo):
    description = 42  # not text: listed with an empty description


def install(monkeypatch, *entries: FakeEntryPoint) -> None:
    def entry_points(*, group: str):
        return list(entries) if group == "chunkwise.processors" else []

    monkeypatch.setattr(_registry, "entry_points", entry_points)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[tuple[str, str]]:
        return [(r.getMessage(), r.fields["processor"]) for r in self.records if r.levelno == level]


@pytest.fixture
def logged():
    """The plugin logger's records, on a handler of its own: the server's logging setup,
    run by other tests, may stop them from reaching the root logger."""
    logger = logging.getLogger("chunkwise.plugins")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_plugins_are_listed_beside_the_builtins(monkeypatch, logged) -> None:
    install(monkeypatch, FakeEntryPoint("echo", Echo), FakeEntryPoint("quiet", Undescribed))
    listed = dict(Streams().processors())
    assert set(listed) == set(BUILTIN_PROCESSORS) | {"echo", "quiet"}
    assert listed["echo"] == "Says nothing new."
    assert listed["quiet"] == ""
    assert all(listed[name] for name in BUILTIN_PROCESSORS)
    assert logged.records == []
    result = Streams().process("id", "text", processor_type="echo")
    assert result.error is None and result.output is None


def test_a_bad_plugin_is_skipped_with_a_warning_and_the_rest_load(monkeypatch, logged) -> None:
    install(
        monkeypatch,
        FakeEntryPoint("json", Echo),  # a built-in's name
        FakeEntryPoint("broken", ImportError("no module named broken")),
        FakeEntryPoint("constant", "not a factory"),
        FakeEntryPoint("echo", Echo),
        FakeEntryPoint("echo", Undescribed),  # a name another plugin took first
    )
    factories = _registry.load_processors()
    assert set(factories) == set(BUILTIN_PROCESSORS) | {"echo"}
    assert factories["json"] is BUILTIN_PROCESSORS["json"]
    assert factories["echo"] is Echo
    assert logged.at(logging.WARNING) == [
        ("processor plugin skipped: name taken", "json"),
        ("processor plugin skipped: not callable", "constant"),
        ("processor plugin skipped: name taken", "echo"),
    ]
    assert logged.at(logging.ERROR) == [("processor plugin failed to load", "broken")]
    (failed,) = [r for r in logged.records if r.levelno == logging.ERROR]
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], ImportError)


@pytest.mark.parametrize("description", [None, b"bytes", 3])
def test_a_description_that_is_not_text_is_empty(description) -> None:
    class Factory:
        pass

    if description is not None:
        Factory.description = description
    assert _registry.describe(Factory) == ""
    Factory.description = "Reads text."
    assert _registry.describe(Factory) == "Reads text."
