"""What the ``bench`` extra and uvloop add is optional: without them the code degrades, it does not break.

matplotlib and py-spy are in the ``bench`` extra (not in ``dev``), uvloop installs only where its platform
marker allows: these tests hide each module (``sys.modules[name] = None`` makes its import fail) and check
the code that imports it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from bench import report
from cli import loop

RESULTS = Path(report.__file__).resolve().parent / "results"


def test_bench_results_are_written_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    doc = json.loads(min(RESULTS.glob("*T1808.json")).read_text())
    assert not report.chart_available()
    paths = report.write(doc, tmp_path, stem="no-chart")
    assert set(paths) == {"json", "md"}
    assert json.loads(paths["json"].read_text())["modes"] == doc["modes"]
    assert "| mode | records |" in paths["md"].read_text()
    assert not (tmp_path / "no-chart.png").exists()


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_commands_run_on_asyncio_where_uvloop_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELENE_EVENT_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert loop.loop_name() == "asyncio"
    assert loop.run(_loop_module()).startswith("asyncio")
