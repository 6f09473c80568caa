"""The `chunkwise` command as a user runs it: a child process against `python -m server`."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import apply_ops, loads_exact

from server.engine import Append, Set

CHUNKWISE = str(Path(sys.executable).parent / "chunkwise")
CHUNKWISE_SERVER = str(Path(sys.executable).parent / "chunkwise-server")
TIMEOUT = 60
PLAN = {"plan_markdown": "# Plan\n1. Count the rows\n2. Report — done\n"}
FILES = {"files": [{"name": "a.yml", "yml_content": "name: a\n"}]}
DOCUMENT = {"k": [1, "two", {"three": None}], "big": 12345678901234567890}


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHUNKWISE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def target():
    from grpc_server import ServerProcess

    server = ServerProcess()
    yield server.address
    server.close()


@pytest.fixture
def write(tmp_path: Path):
    def write(name: str, content: str) -> str:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        return str(path)

    return write


@pytest.mark.parametrize(
    ("processor", "document", "shown"),
    [
        ("text", "just some text", "+"),
        ("plan", json.dumps(PLAN), "Creating a plan... [completed]"),
        ("search_data_catalog", json.dumps({"search_requirements": "rows"}), "Searching"),
        ("metric", json.dumps(FILES), "Creating metric files... [completed] a.yml"),
        ("dashboard", json.dumps(FILES), "Creating dashboard files... [completed] a.yml"),
        ("json", json.dumps(DOCUMENT), "value "),
    ],
)
def test_stream_prints_one_line_per_update_for_each_processor(
    target, write, processor, document, shown
):
    path = write("in.txt", document)
    result = run(
        "stream", path, "--id", f"cli-{processor}", "--type", processor, "--target", target
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    chunks = (len(document) + 15) // 16
    assert len(lines) == chunks
    assert [line.split()[0] for line in lines] == [f"#{n}" for n in range(1, chunks + 1)]
    assert shown in lines[-1]
    assert lines[-1].endswith(f"[final] ({len(document)} chars)")


def test_stream_json_lines_rebuild_the_document_from_stdin(target):
    document = json.dumps(DOCUMENT, indent=1)
    result = run(
        "--target", target, "stream", "-", "--id", "cli-json-lines", "--type", "json",
        "--chunk-size", "5", "--json", stdin=document,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    updates = [json.loads(line) for line in result.stdout.splitlines()]
    ops = [
        Set(d["path"], d["set_json"])
        if d["set_json"] is not None
        else Append(d["path"], d["append"])
        for u in updates
        if u["output"] is not None
        for d in u["output"]["deltas"]
    ]
    assert apply_ops(ops) == loads_exact(document)
    assert updates[-1]["final"] and updates[-1]["complete_text"] == document
    assert updates[-1]["output"]["kind"] == "json"


def test_invalid_json_is_shown_and_the_exit_status_says_so(target, write):
    result = run("stream", write("bad.json", '{"a": tru}'), "--id", "cli-bad", "--type", "json",
                 "--target", target)  # fmt: skip
    assert result.returncode == 1
    assert "error INVALID_ARGUMENT" in result.stdout
    assert "offset" in result.stdout


def test_an_unfinished_id_can_be_continued_then_read_then_cleared(target, write):
    path = write("part.txt", "0123456789" * 5)
    for _ in range(2):
        result = run("stream", path, "--id", "cli-cont", "--no-final", "--target", target)
        assert result.returncode == 0, result.stderr
        assert "[final]" not in result.stdout
    got = run("get", "cli-cont", "--target", target)
    assert got.returncode == 0
    assert got.stdout == "0123456789" * 10
    info = json.loads(run("get", "cli-cont", "--json", "--target", target).stdout)
    assert info == {"text": "0123456789" * 10, "last_sequence": 8, "processor_type": "text"}
    assert run("clear", "cli-cont", "--target", target).stdout == "cleared cli-cont\n"
    assert run("clear", "cli-cont", "--target", target).stdout == "cli-cont was not tracked\n"
    missing = run("get", "cli-cont", "--target", target)
    assert missing.returncode == 4
    assert missing.stdout == ""
    assert missing.stderr.startswith("chunkwise: ") and missing.stderr.count("\n") == 1


def test_an_id_can_be_streamed_again_after_its_final_chunk(target, write):
    path = write("again.txt", "same text twice")
    for _ in range(2):
        result = run("stream", path, "--id", "cli-again", "--chunk-size", "4", "--target", target)
        assert result.returncode == 0, result.stdout
        assert result.stdout.splitlines()[-1].endswith("[final] (15 chars)")


def test_snapshot_mode_sends_growing_prefixes(target, write):
    result = run("stream", write("s.txt", "abcdefghij"), "--id", "cli-snap", "--mode", "snapshot",
                 "--chunk-size", "4", "--target", target)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['#1 +"abcd"', '#2 +"efgh"', '#3 +"ij" [final] (10 chars)']


def test_processors_and_health(target):
    listed = run("processors", "--target", target)
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == ["dashboard", "json", "metric", "plan", "search_data_catalog", "text"]
    as_json = [
        json.loads(line)
        for line in run("processors", "--json", "--target", target).stdout.splitlines()
    ]
    assert [p["name"] for p in as_json] == names
    healthy = run("--target", target, "health")
    assert (healthy.returncode, healthy.stdout) == (0, "SERVING\n")
    unknown = run("health", "--service", "no.such.Service", "--target", target)
    assert (unknown.returncode, unknown.stdout) == (6, "SERVICE_UNKNOWN\n")


def test_an_unreachable_server_is_one_line_and_status_3():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    result = run("health", "--target", f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert result.stderr.startswith(f"chunkwise: cannot reach 127.0.0.1:{port}")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["stream", "x.txt"],
        ["stream", "x.txt", "--id", "a", "--mode", "fragments"],
        ["nonsense"],
        [],
    ],
)
def test_a_bad_command_line_is_status_2(args):
    assert run(*args).returncode == 2


def test_a_bad_chunk_size_or_missing_file_is_status_2(target, tmp_path):
    size = run("stream", "-", "--id", "a", "--chunk-size", "0", "--target", target, stdin="x")
    assert size.returncode == 2 and "--chunk-size" in size.stderr
    missing = run("stream", str(tmp_path / "nope.txt"), "--id", "a", "--target", target)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_help_documents_the_exit_codes():
    result = run("--help")
    assert result.returncode == 0
    for code in ("0", "1", "2", "3", "4", "5", "6", "130"):
        assert re.search(rf"^  {code}\s+\S", result.stdout, re.MULTILINE), code


def test_chunkwise_server_runs_the_server_until_sigterm():
    server = subprocess.Popen(
        [CHUNKWISE_SERVER, "--host", "127.0.0.1", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        match = re.fullmatch(r"chunkwise listening on (127\.0\.0\.1:\d+)\n", line)
        assert match, line
        assert run("health", "--target", match.group(1)).stdout == "SERVING\n"
        server.send_signal(signal.SIGTERM)
        assert server.wait(TIMEOUT) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=TIMEOUT)


def test_serve_is_no_longer_a_command_and_says_where_the_server_went():
    result = run("serve", "--port", "0")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "chunkwise-server" in result.stderr and "python -m server" in result.stderr


def test_tls_and_a_token_from_the_environment(tmp_path):
    import os

    from certificates import make_pki
    from grpc_server import ServerProcess

    pki = make_pki(tmp_path)
    tokens = tmp_path / "tokens"
    tokens.write_text("team 0123456789abcdef0123\n")
    tokens.chmod(0o600)
    server = ServerProcess(
        "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
        "--auth-tokens", str(tokens),
    )  # fmt: skip
    try:
        tls = ["--target", server.address, "--ca-cert", str(pki.ca.cert)]
        env = {**os.environ, "CHUNKWISE_TOKEN": "0123456789abcdef0123"}
        allowed = subprocess.run(
            [CHUNKWISE, "processors", *tls], capture_output=True, text=True, env=env,
            timeout=TIMEOUT,
        )  # fmt: skip
        assert allowed.returncode == 0, allowed.stderr
        assert "json" in allowed.stdout
        refused = run("processors", *tls)
        assert refused.returncode == 5
        assert refused.stderr.startswith("chunkwise: UNAUTHENTICATED")
    finally:
        server.close()


def test_a_final_line_shows_the_new_text_and_the_whole_text():
    from client import ChunkUpdate, ReasoningText
    from client._render import line

    output = ReasoningText("p", "Creating a plan...", "", "ort", "1. Report", "completed")
    shown = line(
        ChunkUpdate(
            "p",
            4,
            delta='ort"}',
            output=output,
            final=True,
            complete_text='{"plan_markdown": "1. Report"}',
        )
    )
    assert '+"ort"' in shown and '= "1. Report"' in shown and "[final]" in shown


def test_mutual_tls_with_a_client_certificate(tmp_path: Path):
    from certificates import make_pki
    from grpc_server import ServerProcess

    pki = make_pki(tmp_path)
    server = ServerProcess(
        "--tls-cert",
        str(pki.server.cert),
        "--tls-key",
        str(pki.server.key),
        "--tls-client-ca",
        str(pki.ca.cert),
    )
    try:
        common = ("--target", f"localhost:{server.port}", "--ca-cert", str(pki.ca.cert))
        with_cert = run(
            *common,
            "--client-cert",
            str(pki.client.cert),
            "--client-key",
            str(pki.client.key),
            "processors",
        )
        assert with_cert.returncode == 0, with_cert.stderr
        assert "plan" in with_cert.stdout
        without = run(*common, "processors")
        assert without.returncode != 0
        half = run(*common, "--client-cert", str(pki.client.cert), "processors")
        assert half.returncode == 2 and "--client-key" in half.stderr
    finally:
        server.close()
