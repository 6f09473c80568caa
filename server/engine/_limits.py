from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Limits:
    """The engine's limits; sizes in UTF-8 bytes, times in seconds."""

    max_id_bytes: int = 256
    max_chunk_bytes: int = 1 << 20
    max_text_bytes: int = 16 << 20
    max_ids: int = 100_000
    idle_ttl: float = 3600.0
    max_json_depth: int = 512

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"{f.name} must be positive, got {value!r}")
