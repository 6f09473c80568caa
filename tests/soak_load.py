"""A checked load for a running chunkwise server: many concurrent documents over grpc.aio.

Each document is a random text (JSON for the JSON processors, free text for `text`), cut at
random and sent in a random mode under an id of its own; one stream may carry one to three
documents interleaved. Every response is checked as it arrives (its delta is exactly the
new piece), every final against the document (complete text and processor output), and
other channels read documents in flight (their text must be a prefix of the document) and
write, read and clear ids of their own. Expected values come from the documents, never
from the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import grpc
from chunkwise.v1 import streaming_pb2 as pb
from chunkwise.v1 import streaming_pb2_grpc as pb_grpc
from grpc_server import CLIENT_OPTIONS
from helpers import cut, snapshots

APPEND = pb.DELTA_MODE_APPEND
SNAPSHOT = pb.DELTA_MODE_SNAPSHOT
AUTO = pb.DELTA_MODE_AUTO
PROCESSORS = ("text", "json", "plan", "metric")
#: A deadline per call: only a hang should ever reach it.
CALL_TIMEOUT = 120.0
#: Separate connections: channels with equal settings would otherwise share one.
CHANNEL_OPTIONS = [*CLIENT_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]

TEXT_ALPHABET = 'abcdefghij klmnop\n\t{}[]":,\\/é€中😀'


# --------------------------------------------------------------------------- documents


def random_text(rnd: random.Random, size: int) -> str:
    return "".join(rnd.choice(TEXT_ALPHABET) for _ in range(size))


def random_value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rnd.random() < 0.5
    if kind == 2:
        return rnd.choice([rnd.randint(-(10**20), 10**20), round(rnd.uniform(-1e6, 1e6), 3)])
    if kind in (3, 4):
        return random_text(rnd, rnd.randint(0, 60))
    if kind == 5:
        return [random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 6))]
    size = rnd.randint(0, 5)
    return {random_text(rnd, rnd.randint(0, 8)): random_value(rnd, depth + 1) for _ in range(size)}


def dump(rnd: random.Random, value: Any) -> str:
    return json.dumps(value, ensure_ascii=rnd.random() < 0.3, indent=rnd.choice([None, 1, 2]))


def random_document(rnd: random.Random, processor: str) -> tuple[str, Any]:
    """The text to stream and what the final output must show of it."""
    if processor == "text":
        return random_text(rnd, rnd.randint(0, 1500)), None
    if processor == "json":
        value = {f"k{n}": random_value(rnd) for n in range(rnd.randint(1, 8))}
        return dump(rnd, value), value
    if processor == "plan":
        markdown = random_text(rnd, rnd.randint(0, 1500))
        return dump(rnd, {"plan_markdown": markdown}), markdown
    files = {
        f"file_{n}.yml": random_text(rnd, rnd.randint(0, 400)) for n in range(rnd.randint(1, 4))
    }
    value = {"files": [{"name": name, "yml_content": yml} for name, yml in files.items()]}
    return dump(rnd, value), files


@dataclass
class Job:
    """One document and how it is sent."""

    chunk_id: str
    processor: str
    mode: int
    text: str
    expected: Any  # what the final output shows: see `check_final`
    pieces: list[str]  # the new text of each request; the requests carry `chunks`
    numbered: bool  # requests carry sequences 1, 2, ...
    final_alone: bool  # an extra final request after the pieces, with no new text
    left_open: bool  # no final at all: the text is checked at the end of the load
    sent: int = 0  # requests acknowledged so far

    @property
    def acknowledged_text(self) -> str:
        return "".join(self.expected_deltas[: self.sent])

    @cached_property
    def chunks(self) -> list[str]:
        # AUTO is sent cumulative snapshots: the one chunking its heuristic tracks exactly
        # (each chunk starts with the previous one, so the delta is precisely the rest).
        chunks = self.pieces if self.mode == APPEND else snapshots(self.pieces)
        if self.final_alone:
            chunks = [*chunks, "" if self.mode == APPEND else self.text]
        return chunks

    @cached_property
    def expected_deltas(self) -> list[str]:
        return [*self.pieces, ""] if self.final_alone else self.pieces

    def request(self, index: int) -> pb.ProcessChunksRequest:
        count = len(self.chunks)
        return pb.ProcessChunksRequest(
            chunk_id=self.chunk_id,
            chunk=self.chunks[index],
            processor_type=self.processor if index == 0 else "",
            mode=self.mode if index == 0 else 0,
            final=index == count - 1 and not self.left_open,
            sequence=index + 1 if self.numbered else 0,
        )


def random_job(rnd: random.Random, chunk_id: str, *, may_leave_open: bool) -> Job:
    processor = rnd.choice(PROCESSORS)
    text, expected = random_document(rnd, processor)
    count = rnd.randint(1, min(30, len(text) + 1))
    pieces = cut(text, sorted(rnd.sample(range(len(text) + 1), count - 1)))
    left_open = may_leave_open and rnd.random() < 0.1
    return Job(
        chunk_id=chunk_id,
        processor=processor,
        mode=rnd.choice([APPEND, SNAPSHOT, AUTO]),
        text=text,
        expected=expected,
        pieces=pieces,
        numbered=rnd.random() < 0.5,
        final_alone=not left_open and rnd.random() < 0.5,
        left_open=left_open,
    )


def check_final(job: Job, response: pb.ProcessChunksResponse) -> None:
    assert response.complete_text == job.text, f"{job.chunk_id}: complete text differs"
    output = response.output
    if job.processor == "text":
        assert not response.HasField("output")
    elif job.processor == "json":
        assert json.loads(output.json.value_json) == job.expected, f"{job.chunk_id}: value"
    elif job.processor == "plan":
        assert output.text.status == "completed" and output.text.message == job.expected
    else:
        assert output.file.status == "completed"
        assert {f.file_name: f.text for f in output.file.files} == job.expected


# --------------------------------------------------------------------------- the load


@dataclass
class Load:
    """What the load did; `failures` must end empty."""

    latencies: list[float] = field(default_factory=list)
    first_latencies: list[float] = field(default_factory=list)  # a new stream's first answer
    messages: int = 0
    unary_calls: int = 0
    documents: int = 0  # finished: their final checked
    failures: list[str] = field(default_factory=list)
    in_flight: dict[str, Job] = field(default_factory=dict)
    unfinished: list[Job] = field(default_factory=list)  # left open, or cut at the deadline
    refused: Counter[str] = field(default_factory=Counter)  # streams failed unanswered
    rss_kib: list[int] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures.append(what)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def rss_kib(pid: int) -> int:
    """The resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


async def sample_rss(pid: int, load: Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            load.rss_kib.append(rss_kib(pid))
        except FileNotFoundError:
            return
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


# What grpc.aio raises when a write races the end of its call (the server's refusal): the
# call then reports INTERNAL, and the status the server sent is lost to this client.
WRITE_RACE = "a write raced the refusal"


def refusal(error: grpc.aio.AioRpcError) -> str:
    """The status name of a stream that failed unanswered, or WRITE_RACE."""
    if error.code() == grpc.StatusCode.INTERNAL and error.details() == "Internal error from Core":
        return WRITE_RACE
    return error.code().name


async def feed_stream(
    stub: pb_grpc.StreamingParserStub,
    jobs: list[Job],
    load: Load,
    rnd: random.Random,
    *,
    cut: Callable[[], bool],
) -> None:
    """Send `jobs` interleaved on one stream, checking every response. Once `cut()` is
    true no more requests are sent: what was acknowledged is checked at the end."""
    call = stub.ProcessChunks(timeout=CALL_TIMEOUT)
    pending = list(jobs)
    acknowledged = 0
    try:
        while pending and not cut():
            job = rnd.choice(pending)
            index = job.sent
            request = job.request(index)
            load.in_flight[job.chunk_id] = job
            started = time.perf_counter()
            await call.write(request)
            response = await call.read()
            latency = time.perf_counter() - started
            (load.latencies if acknowledged else load.first_latencies).append(latency)
            load.messages += 1
            acknowledged += 1
            job.sent += 1
            if (response.chunk_id, response.sequence) != (job.chunk_id, request.sequence):
                load.fail(f"{job.chunk_id}: response out of order: {response.chunk_id}")
            elif response.HasField("error") or response.duplicate or response.reset:
                load.fail(f"{job.chunk_id}: request {index}: {response}")
            elif response.delta != job.expected_deltas[index]:
                load.fail(f"{job.chunk_id}: request {index}: delta lost or mixed")
            if job.sent < len(job.chunks):
                continue
            pending.remove(job)
            del load.in_flight[job.chunk_id]
            if job.left_open:
                load.unfinished.append(job)
                continue
            load.documents += 1
            try:
                check_final(job, response)
            except AssertionError as error:
                load.fail(f"{job.chunk_id}: final: {error}")
        await call.done_writing()
        if await call.read() is not grpc.aio.EOF:
            load.fail("a response past the last request")
    except grpc.aio.AioRpcError as error:
        if acknowledged:
            load.fail(
                f"stream failed after {acknowledged} answers: {error.code()} {error.details()}"
            )
        else:
            load.refused[refusal(error)] += 1
    for job in pending:
        load.in_flight.pop(job.chunk_id, None)
        if job.sent:
            load.unfinished.append(job)


async def stream_worker(
    number: int,
    channels: list[grpc.aio.Channel],
    load: Load,
    keep_going: Callable[[], bool],
    *,
    cut: Callable[[], bool],
    may_leave_open: bool,
) -> None:
    """Streams of one to three documents, one after another, while `keep_going()`."""
    rnd = random.Random(number)
    stub = pb_grpc.StreamingParserStub(channels[number % len(channels)])
    documents = 0
    while keep_going():
        jobs = [
            random_job(rnd, f"w{number}-d{documents + n}", may_leave_open=may_leave_open)
            for n in range(rnd.choice([1, 1, 2, 3]))
        ]
        documents += len(jobs)
        await feed_stream(stub, jobs, load, rnd, cut=cut)


async def reader(number: int, channel: grpc.aio.Channel, load: Load, keep_going) -> None:
    """Reads documents in flight: each text read must be a prefix of its document."""
    rnd = random.Random(-number)
    stub = pb_grpc.StreamingParserStub(channel)
    while keep_going():
        if not load.in_flight:
            await asyncio.sleep(0.01)
            continue
        job = load.in_flight[rnd.choice(list(load.in_flight))]
        load.unary_calls += 1
        try:
            info = await stub.GetCompleteText(
                pb.GetCompleteTextRequest(chunk_id=job.chunk_id), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            # Not yet created, or finished: both are fine. Anything else is not.
            if error.code() != grpc.StatusCode.NOT_FOUND:
                load.fail(f"GetCompleteText {job.chunk_id}: {error.code()}")
            continue
        if not job.text.startswith(info.text) or info.processor_type != job.processor:
            load.fail(f"{job.chunk_id}: a read in flight is not a prefix of the document")


async def clearer(number: int, channel: grpc.aio.Channel, load: Load, keep_going) -> None:
    """Writes, reads and clears ids of its own, alongside the load."""
    stub = pb_grpc.StreamingParserStub(channel)
    round_ = 0
    while keep_going():
        chunk_id = f"clear{number}-{round_}"
        round_ += 1
        pieces = [f"<{chunk_id}:{n}>" for n in range(5)]
        requests = [
            pb.ProcessChunksRequest(chunk_id=chunk_id, chunk=p, mode=APPEND) for p in pieces
        ]
        responses = [r async for r in stub.ProcessChunks(iter(requests), timeout=CALL_TIMEOUT)]
        load.messages += len(responses)
        if [r.delta for r in responses] != pieces:
            load.fail(f"{chunk_id}: deltas differ")
        clear = pb.ClearChunkRequest(chunk_id=chunk_id)
        read = pb.GetCompleteTextRequest(chunk_id=chunk_id)
        text = (await stub.GetCompleteText(read, timeout=CALL_TIMEOUT)).text
        cleared = (await stub.ClearChunk(clear, timeout=CALL_TIMEOUT)).cleared
        again = (await stub.ClearChunk(clear, timeout=CALL_TIMEOUT)).cleared
        load.unary_calls += 4
        if (text, cleared, again) != ("".join(pieces), True, False):
            load.fail(f"{chunk_id}: read {text!r}, cleared {cleared}, then {again}")
        try:
            await stub.GetCompleteText(read, timeout=CALL_TIMEOUT)
            load.fail(f"{chunk_id}: still tracked after ClearChunk")
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                load.fail(f"{chunk_id}: read after clear: {error.code()}")


async def check_unfinished(channel: grpc.aio.Channel, load: Load) -> None:
    """Documents left open or cut short: each id holds exactly what was acknowledged."""
    stub = pb_grpc.StreamingParserStub(channel)
    for job in load.unfinished:
        try:
            info = await stub.GetCompleteText(
                pb.GetCompleteTextRequest(chunk_id=job.chunk_id), timeout=CALL_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            load.fail(f"{job.chunk_id}: unfinished, read: {error.code()}")
            continue
        if info.text != job.acknowledged_text:
            load.fail(f"{job.chunk_id}: unfinished, its text differs")
        if info.last_sequence != (job.sent if job.numbered else 0):
            load.fail(f"{job.chunk_id}: unfinished, last_sequence {info.last_sequence}")
        await stub.ClearChunk(pb.ClearChunkRequest(chunk_id=job.chunk_id), timeout=CALL_TIMEOUT)


def open_channels(address: str, count: int) -> list[grpc.aio.Channel]:
    return [grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) for _ in range(count)]


def summary(load: Load, elapsed: float) -> dict[str, float]:
    return {
        "seconds": round(elapsed, 1),
        "documents_finished": load.documents,
        "documents_unfinished": len(load.unfinished),
        "messages": load.messages,
        "messages_per_s": round(load.messages / elapsed),
        "unary_calls": load.unary_calls,
        "p50_ms": round(percentile(load.latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(load.latencies, 0.99) * 1000, 1),
        "first_answer_p99_ms": round(percentile(load.first_latencies, 0.99) * 1000, 1),
        "peak_rss_mib": round(max(load.rss_kib, default=0) / 1024, 1),
        "end_rss_mib": round((load.rss_kib or [0])[-1] / 1024, 1),
    }
