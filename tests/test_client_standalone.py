"""The client stands alone: it never imports the server, and only its command needs tqdm.

A backend service installs chunkwise to talk to a server that runs elsewhere; it must not
pay for (or break on) the server's code, nor for the command's progress bars.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent / "client"
TIMEOUT = 60

# Run in a child process so that what this test process already imported cannot hide an
# import. A None in sys.modules makes `import name` (and of any name.sub) raise ImportError.
WITHOUT_THE_SERVER = """
import sys

sys.modules["server"] = None
try:
    import server.cli
except ImportError:
    pass
else:
    raise AssertionError("server is still importable")

import client

assert "tqdm" not in sys.modules, "import client imported tqdm"
import client.cli

target = sys.argv[1]
with client.Client(target, timeout=30) as chunkwise:
    updates = list(chunkwise.process("standalone", ["ab", "cd"], mode="append"))
print(updates[-1].complete_text)
sys.exit(client.cli.main(["health", "--target", target]))
"""

WITHOUT_TQDM = """
import sys

sys.modules["tqdm"] = None
import client
import client.cli

target = sys.argv[1]
with client.Client(target, timeout=30) as chunkwise:
    print(" ".join(info.name for info in chunkwise.list_processors()))
sys.exit(client.cli.main(["health", "--target", target]))
"""


def run_python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def imported_modules(path: Path) -> set[str]:
    """Every absolute import in a module, at any depth (in functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_client_module_imports_the_server():
    modules = sorted(CLIENT.rglob("*.py"))
    assert CLIENT / "cli.py" in modules
    offenders = {
        str(path.relative_to(CLIENT.parent)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] == "server"
        )
        for path in modules
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_client_and_its_command_work_with_the_server_unimportable(grpc_server, tmp_path):
    result = run_python(WITHOUT_THE_SERVER, grpc_server.address, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "abcd\nSERVING\n"


def test_without_tqdm_the_library_works_and_the_command_names_the_extra(grpc_server, tmp_path):
    result = run_python(WITHOUT_TQDM, grpc_server.address, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "json" in result.stdout.split()
    assert result.stderr == (
        "chunkwise: the chunkwise command needs the 'cli' extra: pip install 'chunkwise[cli]'\n"
    )
