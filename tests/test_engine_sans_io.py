"""The engine is sans-I/O: "no threading, clock, logging, importlib, grpc or namespaces
inside. A test checks the imports." Every module of server/engine/ is read with `ast`, and
the package is imported and run in a fresh interpreter, which must load none of them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "server" / "engine"
FORBIDDEN = {
    "threading",
    "_thread",
    "time",
    "logging",
    "importlib",
    "grpc",
    "asyncio",
    "socket",
    "concurrent",
    "chunkwise",
    "server",
}


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_engine_module_imports_io_threads_clocks_or_the_server() -> None:
    modules = sorted(ENGINE.glob("*.py"))
    assert len(modules) > 5
    found = {path.name: sorted(_imported(path) & FORBIDDEN) for path in modules}
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_importing_and_running_the_engine_loads_none_of_them() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import server.engine as engine\n"
        "session = engine.Session('id', processor_type='json', mode=engine.Mode.APPEND,\n"
        "    factory=engine.BUILTIN_PROCESSORS['json'], limits=engine.Limits(),\n"
        "    response_size=lambda result: 0)\n"
        "print(session.feed('[1, 2', final=False).output.deltas)\n"
        "print(sorted({name.split('.')[0] for name in set(sys.modules) - before}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    deltas, loaded = run.stdout.splitlines()
    assert "Set(path='/0', json='1')" in deltas
    assert "'server'" in loaded  # the check sees what was loaded
    assert {name.strip(" '") for name in loaded.strip("[]").split(",")} & FORBIDDEN == {"server"}
