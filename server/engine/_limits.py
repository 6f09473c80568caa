from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class Limits:
    """The engine's limits; sizes in UTF-8 bytes, times in seconds.

    The tenant limits apply to each namespace apart; 0 means "the same as the global one".
    """

    max_id_bytes: int = 256
    max_chunk_bytes: int = 1 << 20
    max_text_bytes: int = 16 << 20
    max_ids: int = 100_000
    idle_ttl: float = 3600.0
    max_json_depth: int = 512
    #: Everything held for ids: texts, parser and processor state, kept responses.
    max_memory_bytes: int = 1 << 30
    tenant_max_ids: int = 0
    tenant_max_memory_bytes: int = 0
    #: No response is bigger: a final that would be is refused before the id is finished.
    max_response_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("tenant_") and value == 0:
                continue
            if not value > 0:
                raise ValueError(f"{f.name} must be positive, got {value!r}")

    @property
    def ids_per_tenant(self) -> int:
        return min(self.tenant_max_ids or self.max_ids, self.max_ids)

    @property
    def memory_per_tenant(self) -> int:
        return min(self.tenant_max_memory_bytes or self.max_memory_bytes, self.max_memory_bytes)
