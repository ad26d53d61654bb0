"""README.md's table of slices is the one `selene-ledger slices` prints from the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.main import main
from cli.slices import rows, table
from contracts.registry import REGISTRY

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_the_registry_table() -> None:
    found = re.search(r"<!-- slices:begin -->\n(.*?)\n<!-- slices:end -->", README.read_text(), re.S)
    assert found is not None, "README.md has no slices table"
    assert found.group(1) == table(), "run `selene-ledger slices` and paste its output into README.md"


def test_one_row_per_declared_slice_and_the_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(rows()) == len(REGISTRY.slices) + sum(len(s.also) for s in REGISTRY.slices)
    assert main(["slices"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == table()


def test_every_row_of_seed_000_once_in_order() -> None:
    """All 26 rows of seed 000 are wired: a slice of its own, or a row a slice carries on its tables."""
    assert [int(r.split("|")[1]) for r in rows()] == list(range(1, 27))


def test_a_carried_row_has_its_doc_and_its_acceptance_tests() -> None:
    root = README.parent
    tests = "\n".join(p.read_text() for p in (root / "tests").rglob("test_*.py"))
    for s in REGISTRY.slices:
        for r in s.also:
            assert (root / r.doc).is_file(), r.doc
            for n in range(1, 5):
                assert f"def test_{r.acceptance.lower().replace('-', '_')}_0{n}_" in tests, (r.acceptance, n)
