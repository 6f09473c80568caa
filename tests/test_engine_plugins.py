"""A processor installed as a package appears in the registry and works, with no change to
the server: the entry-point group `chunkwise.processors`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

PLUGIN_MODULE = """
from server.engine import Mode, ReasoningText


class ShoutProcessor:
    description = "Upper-cases the text as it grows."

    def __init__(self, chunk_id, *, max_json_depth=512):
        self.chunk_id = chunk_id

    def process(self, new_text, *, final, complete_text):
        if not (new_text or final):
            return None
        return ReasoningText(
            id=self.chunk_id, title="Shouting...", secondary_title="",
            message_chunk=new_text.upper(),
            message=complete_text().upper() if final else "",
            status="completed" if final else "loading",
        )
"""

CHECK = """
from server.engine import Mode
from server.streams import Streams
parser = Streams()
assert ("{name}", "Upper-cases the text as it grows.") in parser.processors(), parser.processors()
first = parser.process("a", "hello ", processor_type="{name}", mode=Mode.APPEND)
last = parser.process("a", "world", final=True)
assert first.output.message_chunk == "HELLO ", first
assert last.output.message == "HELLO WORLD", last
print("plugin ok")
"""


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.timeout(300)
def test_installed_plugin_package_is_listed_and_processes(tmp_path):
    suffix = uuid.uuid4().hex[:8]
    name = f"shout_{suffix}"
    package = f"chunkwise-test-plugin-{suffix}"
    (tmp_path / f"{name}.py").write_text(PLUGIN_MODULE)
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{package}"
            version = "0.0.1"

            [tool.setuptools]
            py-modules = ["{name}"]

            [project.entry-points."chunkwise.processors"]
            {name} = "{name}:ShoutProcessor"
            """
        )
    )
    installed = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(tmp_path))
    assert installed.returncode == 0, installed.stderr
    try:
        checked = subprocess.run(
            [sys.executable, "-c", CHECK.replace("{name}", name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stderr
        assert "plugin ok" in checked.stdout
    finally:
        _pip("uninstall", "--yes", package)
