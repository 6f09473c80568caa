"""The benchmark documents and how they are cut into chunks.

Every generator is seeded, so two runs (or two machines) measure the same bytes. Sizes are
targets in UTF-8 bytes: a document stops growing at a natural boundary near the target and
is then closed, so it is a complete, valid JSON value within a few percent of `size`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

WORKLOAD_NAMES = ("plan", "metric", "nested")

# The processor each workload is fed to in the engine bench.
PROCESSOR_FOR = {"plan": "plan", "metric": "metric", "nested": "json"}

MB = 1 << 20

_WORDS = (
    "the plan step data model query table metric dashboard user revenue filter join "
    "group order count sum average latency cohort region product churn weekly monthly "
    "pipeline source schema column index owner review deploy check result chart"
).split()

# Raw (unescaped) multi-byte characters: 2, 3 and 4 bytes in UTF-8. The em dash and the
# check mark are what LLM prose is full of; the rocket is outside the BMP.
_RAW_MULTIBYTE = ("café", "naïve", "—", "✅", "数据", "模型", "🚀", "über")

# Escapes as they appear in JSON text: plain ones, a BMP \u escape and a surrogate pair.
_ESCAPES = ("\\n", "\\n\\n", '\\"', "\\\\", "\\t", "\\u00e9", "\\u2014", "\\ud83d\\ude80")


def _markdown_body(rng: random.Random, size: int) -> str:
    """JSON string content (without the quotes) of about `size` UTF-8 bytes of markdown."""
    parts: list[str] = []
    total = 0
    while total < size:
        roll = rng.random()
        if roll < 0.80:
            piece = rng.choice(_WORDS) + " "
        elif roll < 0.87:
            piece = rng.choice(_RAW_MULTIBYTE) + " "
        elif roll < 0.97:
            piece = rng.choice(_ESCAPES)
        else:
            piece = rng.choice(("\\n## Step ", "\\n- ", "\\n1. ", "**", "`"))
        parts.append(piece)
        total += len(piece.encode())
    return "".join(parts)


def plan(size: int = MB, seed: int = 1) -> str:
    """`{"plan_markdown": "..."}`: one long string with escapes and raw multi-byte text."""
    rng = random.Random(seed)
    return '{"plan_markdown": "' + _markdown_body(rng, size) + '"}'


def _yaml_file(rng: random.Random, size: int, index: int) -> str:
    lines = [f"name: metric_{index:03d}", f'description: "{rng.choice(_WORDS)} metric"', "sql: |"]
    total = sum(len(line) + 1 for line in lines)
    while True:
        column, measure = rng.choice(_WORDS), rng.choice(_WORDS)
        line = f'  SELECT {column}, sum({measure}) AS "{column}_total" -- {rng.random():.4f}'
        if total + (len(line) + 1) / 2 > size:  # stop at the line boundary nearest the size
            break
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def metric(size: int = MB, seed: int = 2) -> str:
    """`{"files": [{"name", "yml_content"}, ...]}`: 100 files of YAML (about size/100 each)."""
    rng = random.Random(seed)
    # Each file's JSON wrapper takes about 50 bytes; escaping the YAML's newlines and
    # quotes adds about 6% to the rest.
    per_file = max(int((size / 100 - 50) / 1.06), 64)
    files = [
        {"name": f"metric_{i:03d}.yml", "yml_content": _yaml_file(rng, per_file, i)}
        for i in range(100)
    ]
    return json.dumps({"files": files}, ensure_ascii=False)


_NUMBERS = (
    lambda r: str(r.randint(0, 9)),
    lambda r: str(r.randint(-(10**6), 10**6)),
    lambda r: str(r.randint(10**19, 10**25)),  # past 64 bits: must survive as written
    lambda r: f"{r.uniform(-1000, 1000):.6f}",
    lambda r: f"{r.uniform(1, 9):.3f}e{r.randint(-30, 30)}",
    lambda r: f"{r.uniform(1, 9):.2f}E+{r.randint(0, 300)}",
    lambda r: f"-{r.randint(1, 9)}.{r.randint(0, 999)}e-{r.randint(1, 9)}",
    lambda r: "0",
    lambda r: "-0",
    lambda r: "0.5",
)

_STRINGS = ("", "plain", 'quote " inside', "back\\slash", "tab\there", "line\nbreak", "é—✅🚀")


def _scalar(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(_NUMBERS)(rng)
    if roll < 0.85:
        return json.dumps(
            rng.choice(_STRINGS) + rng.choice(_WORDS), ensure_ascii=rng.random() < 0.5
        )
    return rng.choice(("true", "false", "null"))


def _value(
    rng: random.Random, depth: int, max_depth: int, out: list[str], budget: list[int]
) -> None:
    """Appends one value; containers nest down to `max_depth` open containers, and at most
    budget[0] containers open before everything left is a scalar (random trees that branch
    more than once on average would otherwise grow without bound)."""
    budget[0] -= 1
    if depth >= max_depth or budget[0] <= 0 or (depth > 2 and rng.random() < 0.35):
        out.append(_scalar(rng))
        return
    space = rng.choice(("", " ", "\n" + "  " * depth))
    width = rng.randint(1, 4)
    if rng.random() < 0.5:
        out.append("[")
        for i in range(width):
            if i:
                out.append("," + space)
            _value(rng, depth + 1, max_depth, out, budget)
        out.append("]")
    else:
        out.append("{")
        for i in range(width):
            if i:
                out.append("," + space)
            out.append(json.dumps(f"{rng.choice(_WORDS)}_{i}") + ":" + space)
            _value(rng, depth + 1, max_depth, out, budget)
        out.append("}")


def nested(size: int = MB, seed: int = 3, max_depth: int = 20) -> str:
    """A generic document: objects and arrays down to depth 20, every kind of number."""
    rng = random.Random(seed)
    out = ['{"items": [']
    total = len(out[0])
    first = True
    while total < size:
        piece: list[str] = []
        # The first item always reaches the full depth, so every size has depth 20.
        if first:
            _deep(rng, 3, max_depth + 1, piece)
        else:
            _value(rng, 2, max_depth, piece, [400])
        text = ("" if first else ",\n") + "".join(piece)
        out.append(text)
        total += len(text.encode())
        first = False
    out.append("]}")
    return "".join(out)


def _deep(rng: random.Random, depth: int, max_depth: int, out: list[str]) -> None:
    if depth >= max_depth:
        out.append(_scalar(rng))
        return
    out.append('{"down": ' if depth % 2 else "[")
    _deep(rng, depth + 1, max_depth, out)
    out.append((', "next": ' + _scalar(rng) + "}") if depth % 2 else (", " + _scalar(rng) + "]"))


GENERATORS: dict[str, Callable[..., str]] = {"plan": plan, "metric": metric, "nested": nested}


def make(name: str, size: int = MB) -> str:
    return GENERATORS[name](size)


def chunks(text: str, chunk_bytes: int) -> list[str]:
    """Cuts `text` into pieces of at most `chunk_bytes` UTF-8 bytes, never inside a code
    point (a proto string is UTF-8), so a piece may end inside an escape or a surrogate
    pair written as escapes, as an LLM's token stream does."""
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(start + chunk_bytes, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        if end == start:  # one code point wider than chunk_bytes
            end = start + 1
            while end < len(data) and (data[end] & 0xC0) == 0x80:
                end += 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces
