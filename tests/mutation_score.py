"""Per-module score of the last `mutmut run` (what `make mutate` prints after it).

A module's score is killed / (mutants - equivalent). Equivalent mutants are the ones
tests/MUTATION.md lists as "- `name`: why": no test can tell them from the real code, so
they count neither way. Every other mutant that was not killed is printed by name, so a
new survivor is seen at once, whatever the percentage.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

# mutmut's own exit codes: a failing test run, or one stopped for its CPU time (a mutant
# that loops forever), is a mutant found out.
_KILLED = {1, 3, -24, 24, 152, 255, 36, -11, -9}
_EQUIVALENT = re.compile(r"^- `([\w.]+__mutmut_\d+)`", re.MULTILINE)


def main(root: Path = Path(".")) -> int:
    notes = root / "tests" / "MUTATION.md"
    equivalent = set(_EQUIVALENT.findall(notes.read_text())) if notes.exists() else set()
    by_module: dict[str, dict[str, int | None]] = defaultdict(dict)
    for meta in sorted((root / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(root / "mutants"))[: -len(".meta")]
        by_module[module].update(json.loads(meta.read_text())["exit_code_by_key"])
    if not by_module:
        print("no mutation results: run `make mutate` first")
        return 1
    rows, lost = [], []
    for module, codes in by_module.items():
        checked = {k: v for k, v in codes.items() if v is not None}
        if not checked:
            continue
        eq = {k for k in checked if k in equivalent}
        killed = {k for k, v in checked.items() if v in _KILLED and k not in eq}
        # An "equivalent" mutant that a test kills is not equivalent: count it as killed
        # and say so, so MUTATION.md gets corrected.
        wrongly_equivalent = {k for k in eq if checked[k] in _KILLED}
        eq -= wrongly_equivalent
        killed |= wrongly_equivalent
        survivors = sorted(set(checked) - killed - eq)
        counted = len(checked) - len(eq)
        score = 100.0 * len(killed) / counted if counted else 100.0
        rows.append((module, len(killed), counted, len(eq), score, len(codes) - len(checked)))
        lost += [(module, name, checked[name]) for name in survivors]
        lost += [(module, name, "killed, yet listed as equivalent") for name in wrongly_equivalent]
    width = max(len(r[0]) for r in rows)
    print(f"{'module':<{width}}  killed / counted  equivalent   score  unchecked")
    for module, killed, counted, eq, score, unchecked in rows:
        line = f"{module:<{width}}  {killed:6} / {counted:<7}  {eq:10}  {score:5.1f}%"
        print(f"{line}  {unchecked:9}")
    total_killed, total_counted = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(
        f"{'all':<{width}}  {total_killed:6} / {total_counted:<7}  {sum(r[3] for r in rows):10}"
        f"  {100.0 * total_killed / max(total_counted, 1):5.1f}%"
    )
    if lost:
        print("\nnot killed and not listed as equivalent in tests/MUTATION.md:")
        for _module, name, code in lost:
            print(f"  {name}  ({code if isinstance(code, str) else _status(code)})")
    return 0


def _status(code: int) -> str:
    return {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}.get(code, f"exit {code}")


if __name__ == "__main__":
    sys.exit(main())
