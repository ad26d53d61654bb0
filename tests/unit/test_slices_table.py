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
    assert len(rows()) == len(REGISTRY.slices)
    assert main(["slices"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == table()
