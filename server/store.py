"""Where per-id state lives: in this process's memory.

Keys are (namespace, chunk_id); each live id's state holds its engine Session. The store's
lock is held only for dictionary and counter work, never while a chunk is read: each id's
state has its own lock (``IdState.lock``), so different ids progress in parallel.
Everything an id holds can be rebuilt from its tracked text, its mode, processor name and
last sequence, which is what a shared store would keep.

Expiry: ``_live`` and ``_finished`` are ordered by last touch, oldest first, so a sweep
pops from the front and stops at the first id still fresh: its cost grows with what
expires, not with what is tracked.

Memory accounting
-----------------
Every id is charged what it holds (``IdState.cost``: a fixed ``ID_COST`` plus its
session's and kept responses' ``held_bytes``), and every finished id its
``Finished.cost``. ``memory`` is their sum, kept per namespace too, and ``recount()``
computes it again from scratch. A chunk first *reserves* the most it could add (its
tracker's growth bound plus its processor's); the reservation is refused when the charged
and reserved memory would pass a budget, and settled against the id's new cost once the
chunk is applied. So the charged memory never passes the budget, however many chunks run at
once. A state removed while a chunk of it is in flight (``ClearChunk``, expiry) is no longer
charged: the chunk's settlement then only returns its reservation.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Protocol

from server.engine import Limits, ResourceExhausted, Session

Key = tuple[str, str]

# How many recent responses of an id are kept, encoded, to answer duplicates, and the most
# one kept response may hold: a duplicate of an older or larger one gets an empty delta, as
# the contract allows.
RECENT_RESPONSES = 8
RECENT_RESPONSE_BYTES = 256 * 1024
# Final responses remembered for duplicates of a final: each at most FINAL_KEPT_BYTES, and
# FINAL_CACHE_BYTES in all, older ones dropped first (their sequences stay remembered).
FINAL_KEPT_BYTES = 2 << 20
FINAL_CACHE_BYTES = 32 << 20
#: What an id costs beyond the text and state it holds: its IdState, tracker, processor
#: object, deque and dictionary entries (measured with tracemalloc; tests hold it).
ID_COST = 2048
#: What a finished id's remembered sequence costs: its Finished record and entries.
FINISHED_COST = 256

_sizeof = sys.getsizeof
#: A kept response beyond its bytes' length: its (sequence, bytes) tuple and the bytes
#: object's header.
KEPT_OVERHEAD = _sizeof((0, b"")) + _sizeof(b"")


def kept_bytes(response: bytes) -> int:
    """The memory a kept response holds, with its entry."""
    return KEPT_OVERHEAD + len(response)


class IdState:
    """One tracked id. Read and change it only while holding `lock`."""

    __slots__ = (
        "lock",
        "alive",
        "applied",
        "touched",
        "session",
        "recent",
        "recent_bytes",
        "cost",
        "usage",
    )

    def __init__(self, usage: _Usage, touched: float) -> None:
        self.lock = threading.Lock()
        self.alive = True  # False once removed from the store: callers look it up again
        self.applied = False  # False until a first request is applied
        self.touched = touched
        self.session: Session | None = None  # made by the first request
        self.recent: deque[tuple[int, bytes]] = deque(maxlen=RECENT_RESPONSES)
        self.recent_bytes = 0
        self.cost = 0  # what the store charges for this id now
        self.usage = usage  # its namespace's

    def remember(self, sequence: int, response: bytes) -> None:
        """Keep the encoded response to a numbered chunk for its duplicates, when it is
        small enough."""
        size = kept_bytes(response)
        if size > RECENT_RESPONSE_BYTES:
            return
        recent = self.recent
        if len(recent) == RECENT_RESPONSES:
            self.recent_bytes -= kept_bytes(recent[0][1])
        recent.append((sequence, response))
        self.recent_bytes += size

    def recall(self, sequence: int) -> bytes | None:
        """The encoded first response to `sequence`, when still kept."""
        for kept_sequence, response in self.recent:
            if kept_sequence == sequence:
                return response
        return None

    def held_bytes(self) -> int:
        """What this id holds now, as the store charges it."""
        session = self.session
        held = ID_COST + self.recent_bytes
        return held if session is None else held + session.held_bytes


@dataclass(slots=True)
class Finished:
    """What is remembered of an id after its final chunk."""

    last_sequence: int
    finished_at: float
    #: (sequence, encoded response) of the final chunk, while it is kept.
    final_answer: tuple[int, bytes] | None = field(default=None)
    cost: int = FINISHED_COST


class _Usage:
    """What one namespace, or the whole store, holds and may hold."""

    __slots__ = ("ids", "memory", "reserved", "max_ids", "max_memory", "flag")

    def __init__(self, max_ids: int, max_memory: int, flag: str) -> None:
        self.ids = 0  # live and finished
        self.memory = 0
        self.reserved = 0
        self.max_ids = max_ids
        self.max_memory = max_memory
        self.flag = flag  # the setting a refusal names

    def short_of(self, amount: int) -> bool:
        return self.memory + self.reserved + amount > self.max_memory

    def refusal(self, amount: int) -> ResourceExhausted:
        return ResourceExhausted(
            f"memory for ids would pass {self.flag} ({self.max_memory} bytes): "
            f"{self.memory} held, {self.reserved} reserved by chunks in flight, "
            f"this chunk may need {amount}; finish or clear some ids first",
            subject=self.flag,
        )


class Store(Protocol):
    """What Streams asks of a store. MemoryStore keeps everything in this process; a store
    shared by several servers implements the same calls (see the module's docstring for
    what it must keep)."""

    def open(self, key: Key, sequence: int, now: float) -> IdState | Finished: ...
    def reserve(self, key: Key, state: IdState, amount: int) -> None: ...
    def settle(self, state: IdState, reserved: int) -> None: ...
    def admit(self, key: Key, state: IdState) -> None: ...
    def live(self, key: Key) -> IdState | None: ...
    def discard(self, key: Key, state: IdState) -> None: ...
    def finish(
        self, key: Key, state: IdState, final_answer: tuple[int, bytes], now: float
    ) -> None: ...
    def remove(self, key: Key) -> bool: ...
    def expire(self, now: float, most: int) -> int: ...
    @property
    def memory(self) -> int: ...
    def usage(self, namespace: str) -> tuple[int, int]: ...
    def counts(self) -> dict[str, tuple[int, int]]: ...
    def recount(self) -> dict[str, tuple[int, int]]: ...
    def tracked(self) -> tuple[int, int]: ...


class MemoryStore:
    """The store in this process's memory: see the module's docstring."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._idle_ttl = limits.idle_ttl
        self._lock = threading.Lock()
        self._live: OrderedDict[Key, IdState] = OrderedDict()
        self._finished: OrderedDict[Key, Finished] = OrderedDict()
        self._final_results: OrderedDict[Key, int] = OrderedDict()  # key -> cached bytes
        self._final_bytes = 0
        self._total = _Usage(limits.max_ids, limits.max_memory_bytes, "--max-memory-bytes")
        # Namespaces come from the token file, a fixed few: their usage is never dropped.
        self._tenants: dict[str, _Usage] = {}
        self._tenant_finished: dict[str, OrderedDict[Key, None]] = {}
        # Each namespace's kept finals, oldest first: it makes room from its own alone.
        self._tenant_finals: dict[str, OrderedDict[Key, None]] = {}

    # -- what the parser calls -----------------------------------------------------------

    def open(self, key: Key, sequence: int, now: float) -> IdState | Finished:
        """The live state of `key`, touched; or, for a duplicate of a finished id, its
        record; or a new state, not yet counted: `admit` counts it once its first request
        is applied. Raises ResourceExhausted when no id can be added."""
        # acquire/release, not `with`: once per chunk, and `with` costs twice as much.
        lock = self._lock
        lock.acquire()
        try:
            state = self._live.get(key)
            if state is not None:
                state.touched = now
                self._live.move_to_end(key)
                return state
            finished = self._finished.get(key)
            if finished is not None and 0 < sequence <= finished.last_sequence:
                return finished
            # Finished ids make room in admit(), not here: a refused first request must
            # drop nothing. Only live ids can leave no room at all.
            live = len(self._live)
            if live >= self._total.max_ids:
                raise ResourceExhausted(
                    f"{live} ids are tracked, the limit (--max-ids); finish or clear some first",
                    subject="--max-ids",
                )
            tenant = self._tenant(key[0])
            tenant_live = tenant.ids - len(self._tenant_finished[key[0]])
            if tenant_live >= tenant.max_ids:
                raise ResourceExhausted(
                    f"{tenant_live} ids of this namespace are tracked, the limit "
                    "(--tenant-max-ids); finish or clear some first",
                    subject="--tenant-max-ids",
                )
            state = IdState(tenant, now)
            self._live[key] = state
            return state
        finally:
            lock.release()

    def reserve(self, key: Key, state: IdState, amount: int) -> None:
        """Hold `amount` bytes of the budgets for a chunk of `state` in flight. Raises
        ResourceExhausted when the store or the namespace could not hold them, after
        removing the state if no request of it was applied yet."""
        lock = self._lock
        lock.acquire()
        try:
            total = self._total
            tenant = state.usage
            # Written out, not short_of(): this runs once a chunk.
            if (
                total.memory + total.reserved + amount > total.max_memory
                or tenant.memory + tenant.reserved + amount > tenant.max_memory
            ):
                self._make_room(amount, tenant, key[0])
                if total.short_of(amount) or tenant.short_of(amount):
                    if not state.applied and state.alive:
                        del self._live[key]
                        state.alive = False
                    raise (total if total.short_of(amount) else tenant).refusal(amount)
            total.reserved += amount
            tenant.reserved += amount
        finally:
            lock.release()

    def settle(self, state: IdState, reserved: int) -> None:
        """Return a reservation, and charge `state` what it holds now if it is still here."""
        # `alive` turns False only under the store's lock: checked again there.
        held = state.held_bytes() if state.alive else 0
        lock = self._lock
        lock.acquire()
        total = self._total
        tenant = state.usage
        total.reserved -= reserved
        tenant.reserved -= reserved
        if state.alive:
            change = held - state.cost
            total.memory += change
            tenant.memory += change
            state.cost = held
        lock.release()

    def admit(self, key: Key, state: IdState) -> None:
        """A new id's first request was applied: it replaces what was remembered of a
        finished id of that name, and the ids finished earliest make room for it."""
        with self._lock:
            if not state.alive:
                return
            if key in self._finished:
                self._forget_finished(key)
            tenant = state.usage
            self._total.ids += 1
            tenant.ids += 1
            tenant_finished = self._tenant_finished[key[0]]
            while tenant_finished and tenant.ids > tenant.max_ids:
                self._forget_finished(next(iter(tenant_finished)))
            while self._finished and self._total.ids > self._total.max_ids:
                self._forget_finished(next(iter(self._finished)))

    def live(self, key: Key) -> IdState | None:
        """The live state, not touched: reading does not keep an id alive."""
        with self._lock:
            return self._live.get(key)

    def discard(self, key: Key, state: IdState) -> None:
        """Remove a state whose first request was refused."""
        with self._lock:
            if state.alive:
                del self._live[key]
                state.alive = False

    def finish(self, key: Key, state: IdState, final_answer: tuple[int, bytes], now: float) -> None:
        """The id's final was applied: it stops being live, and its last sequence (and,
        room permitting, its final answer, (sequence, encoded response), for duplicates)
        is remembered."""
        with self._lock:
            if not state.alive:
                # Cleared or expired while its final was in flight: as if that came after.
                return
            self._forget_live(key, state)
            last_sequence = state.session.last_sequence if state.session is not None else 0
            if not last_sequence:
                return
            finished = Finished(last_sequence, now)
            total = self._total
            tenant = state.usage
            room = min(
                total.max_memory - total.memory - total.reserved,
                tenant.max_memory - tenant.memory - tenant.reserved,
            )
            final_bytes = kept_bytes(final_answer[1])
            if final_answer[0] and final_bytes <= min(FINAL_KEPT_BYTES, room - FINISHED_COST):
                finished.final_answer = final_answer
                finished.cost += final_bytes
                self._final_results[key] = final_bytes
                self._tenant_finals[key[0]][key] = None
                self._final_bytes += final_bytes
            self._finished[key] = finished
            self._tenant_finished[key[0]][key] = None
            total.ids += 1
            tenant.ids += 1
            self._charge(key[0], finished.cost)
            while self._final_bytes > FINAL_CACHE_BYTES:
                self._drop_final(next(iter(self._final_results)))

    def remove(self, key: Key) -> bool:
        """Forget everything about `key`; True when it was live."""
        with self._lock:
            state = self._live.get(key)
            if state is not None:
                self._forget_live(key, state)
            if key in self._finished:
                self._forget_finished(key)
        return state is not None

    def expire(self, now: float, most: int) -> int:
        """Forget up to `most` ids idle since before `now - idle_ttl`; returns how many.
        The lock is held for one batch: call again while it returns `most`."""
        deadline = now - self._idle_ttl
        expired = 0
        with self._lock:
            while self._live and expired < most:
                key, state = next(iter(self._live.items()))
                if state.touched > deadline:
                    break
                self._forget_live(key, state)
                expired += 1
            while self._finished and expired < most:
                key, finished = next(iter(self._finished.items()))
                if finished.finished_at > deadline:
                    break
                self._forget_finished(key)
                expired += 1
        return expired

    # -- what tests and operators read ---------------------------------------------------

    @property
    def memory(self) -> int:
        """The memory charged for every id now, in bytes."""
        return self._total.memory

    def usage(self, namespace: str) -> tuple[int, int]:
        """(ids, memory) of one namespace, finished ids included."""
        with self._lock:
            tenant = self._tenants.get(namespace)
            return (tenant.ids, tenant.memory) if tenant is not None else (0, 0)

    def tracked(self) -> tuple[int, int]:
        """(ids, bytes): the live ids with a request applied, and the UTF-8 size of their
        texts. The store is locked only to copy the list of states; each text is measured
        after, without its id's lock (a chunk in flight may or may not be counted)."""
        with self._lock:
            states = list(self._live.values())
        ids = text_bytes = 0
        for state in states:
            session = state.session
            if state.applied and session is not None:
                ids += 1
                text_bytes += session.text_bytes
        return ids, text_bytes

    def counts(self) -> dict[str, tuple[int, int]]:
        """(ids, memory) per namespace as the running counts have them, and in all ("*")."""
        with self._lock:
            counts = {
                namespace: (usage.ids, usage.memory)
                for namespace, usage in self._tenants.items()
                if usage.ids or usage.memory
            }
            if self._total.ids or self._total.memory:
                counts["*"] = (self._total.ids, self._total.memory)
            return counts

    def recount(self) -> dict[str, tuple[int, int]]:
        """The same as `counts()`, computed from every id's state, for checking the running
        counts. Call it with no chunk in flight."""
        counts: dict[str, list[int]] = {}
        with self._lock:
            charges = [
                (key[0], state.held_bytes()) for key, state in self._live.items() if state.applied
            ]
            charges += [
                (key[0], FINISHED_COST + self._final_results.get(key, 0)) for key in self._finished
            ]
        for namespace, charge in charges:
            for name in (namespace, "*"):
                count = counts.setdefault(name, [0, 0])
                count[0] += 1
                count[1] += charge
        return {name: (ids, memory) for name, [ids, memory] in counts.items()}

    # -- bookkeeping, under the lock -----------------------------------------------------

    def _tenant(self, namespace: str) -> _Usage:
        tenant = self._tenants.get(namespace)
        if tenant is None:
            limits = self._limits
            tenant = _Usage(
                limits.ids_per_tenant, limits.memory_per_tenant, "--tenant-max-memory-bytes"
            )
            self._tenants[namespace] = tenant
            self._tenant_finished[namespace] = OrderedDict()
            self._tenant_finals[namespace] = OrderedDict()
        return tenant

    def _charge(self, namespace: str, amount: int) -> None:
        self._total.memory += amount
        self._tenants[namespace].memory += amount

    def _forget_live(self, key: Key, state: IdState) -> None:
        del self._live[key]
        state.alive = False
        if state.applied:
            self._total.ids -= 1
            state.usage.ids -= 1
        self._charge(key[0], -state.cost)

    def _forget_finished(self, key: Key) -> None:
        if key in self._final_results:
            self._drop_final(key)
        finished = self._finished.pop(key)
        del self._tenant_finished[key[0]][key]
        self._total.ids -= 1
        self._tenants[key[0]].ids -= 1
        self._charge(key[0], -finished.cost)

    def _make_room(self, amount: int, tenant: _Usage, namespace: str) -> None:
        """Kept final responses are a cache: the oldest give way to new work (a duplicate
        of their final then gets no delta or output, as the contract allows)."""
        total = self._total
        while self._final_results and total.short_of(amount):
            self._drop_final(next(iter(self._final_results)))
        own = self._tenant_finals[namespace]
        while own and tenant.short_of(amount):
            self._drop_final(next(iter(own)))

    def _drop_final(self, key: Key) -> None:
        size = self._final_results.pop(key)
        del self._tenant_finals[key[0]][key]
        self._final_bytes -= size
        finished = self._finished[key]
        finished.final_answer = None
        finished.cost -= size
        self._charge(key[0], -size)
