"""Every test the documents cite exists: a guarantee whose cited proof was renamed or never written reads as
proven and is not. README.md cited two tests that did not exist (issue 15); this keeps it from recurring.

A citation is ``tests/<path>.py::test_name`` or ``<file>.py::test_name`` (the test must be defined in that
file), ``::test_name`` after such a path on the same line (the same file), or a bare ``test_name`` (defined
somewhere under tests/). Cited
test files must exist too. Parametrized ids (``test_x[case]``) cite ``test_x``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "RELIABILITY.md", "BENCHMARKS.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")
))  # fmt: skip
_DEFINED = re.compile(r"^\s*(?:async\s+)?def\s+(test_\w+)", re.MULTILINE)
_PATH = re.compile(r"(?<![\w/])(tests/[\w/]+\.py)")
# a path then ::name, or ::name alone, or a bare name that is not a file's stem
_CITED = re.compile(r"(?:([\w/]+\.py))?(::)?\b(test_\w+)\b(?!\.py)")


def _definitions() -> dict[str, set[str]]:
    """test name -> the files under tests/ defining it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("*.py"):
        for name in _DEFINED.findall(path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def dead_citations(text: str, defined: dict[str, set[str]]) -> list[str]:
    """The citations in ``text`` that name no existing test or file, one line each."""
    dead = []
    for number, line in enumerate(text.splitlines(), start=1):
        dead += [f"{number}: {p} does not exist" for p in _PATH.findall(line) if not (ROOT / p).is_file()]
        last_path = None
        for match in _CITED.finditer(line):
            path, scoped, name = match.groups()
            if path is not None:
                last_path = path
            where = path or (last_path if scoped else None)
            # A short path (``test_faults.py::test_x``) names the file under tests/ ending so.
            files = {f for f in defined.get(name, set()) if where is not None and f.endswith(f"/{where}")}
            if where is not None and where not in defined.get(name, set()) and not files:
                dead.append(f"{number}: {name} is not defined in {where}")
            elif where is None and name not in defined:
                dead.append(f"{number}: {name} is not defined under tests/")
    return dead


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_cited_test_exists(document: str) -> None:
    assert dead_citations((ROOT / document).read_text(), _definitions()) == []


def test_dead_citations_are_found() -> None:
    """The checker itself: each form of citation, alive and dead."""
    defined = {"test_a": {"tests/unit/test_doc_citations.py"}, "test_b": {"tests/e2e/test_pipeline.py"}}
    alive = (
        "`tests/unit/test_doc_citations.py::test_a`; `tests/e2e/test_pipeline.py::test_b[x]`, `test_a`, "
        "`test_doc_citations.py::test_a`"
    )
    assert dead_citations(alive, defined) == []
    dead = dead_citations(
        "`tests/e2e/test_pipeline.py::test_a`, `::test_c`\n`test_d` in tests/unit/test_nothing_here.py\n"
        "`test_pipeline.py::test_a`",
        defined,
    )
    assert dead == [
        "1: test_a is not defined in tests/e2e/test_pipeline.py",
        "1: test_c is not defined in tests/e2e/test_pipeline.py",
        "2: tests/unit/test_nothing_here.py does not exist",
        "2: test_d is not defined under tests/",
        "3: test_a is not defined in test_pipeline.py",
    ]
