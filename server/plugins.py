"""Processor names: the built-ins, and plugins from the entry-point group
``chunkwise.processors`` (the entry point's name is the processor's name; it loads a
factory as described in ``server.engine._processors``). Discovery is the server's: the
engine is handed the factories."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from server._logging import get_logger, log_event
from server.engine import BUILTIN_PROCESSORS, ProcessorFactory

ENTRY_POINT_GROUP = "chunkwise.processors"

log = get_logger("plugins")


def load_processors() -> dict[str, ProcessorFactory]:
    """Name -> factory. A plugin that fails to load, or that reuses a taken name, is
    skipped with a warning: one bad package must not stop the server."""
    factories: dict[str, ProcessorFactory] = dict(BUILTIN_PROCESSORS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in factories:
            log_event(
                log, logging.WARNING, "processor plugin skipped: name taken", processor=entry.name
            )
            continue
        try:
            factory = entry.load()
        except Exception:
            log_event(
                log,
                logging.ERROR,
                "processor plugin failed to load",
                exc_info=True,
                processor=entry.name,
            )
            continue
        if not callable(factory):
            log_event(
                log, logging.WARNING, "processor plugin skipped: not callable", processor=entry.name
            )
            continue
        factories[entry.name] = factory
    return factories


def describe(factory: object) -> str:
    description = getattr(factory, "description", "")
    return description if isinstance(description, str) else ""
