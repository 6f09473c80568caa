"""Processor names: the built-ins, and plugins from the entry-point group
``chunkwise.processors`` (the entry point's name is the processor's name; it loads a
factory as described in ``_processors``)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from ._processors import BUILTIN_PROCESSORS

ENTRY_POINT_GROUP = "chunkwise.processors"

log = logging.getLogger("chunkwise.engine")


def load_processors() -> dict[str, object]:
    """Name -> factory. A plugin that fails to load, or that reuses a taken name, is
    skipped with a warning: one bad package must not stop the server."""
    factories: dict[str, object] = dict(BUILTIN_PROCESSORS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in factories:
            log.warning("processor plugin skipped: name taken", extra={"processor": entry.name})
            continue
        try:
            factory = entry.load()
        except Exception:
            log.exception("processor plugin failed to load", extra={"processor": entry.name})
            continue
        if not callable(factory):
            log.warning("processor plugin skipped: not callable", extra={"processor": entry.name})
            continue
        factories[entry.name] = factory
    return factories


def describe(factory: object) -> str:
    description = getattr(factory, "description", "")
    return description if isinstance(description, str) else ""
