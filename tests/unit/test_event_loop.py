"""Which event loop the commands run on (``cli.loop``)."""

from __future__ import annotations

import asyncio

import pytest

from cli import loop


async def _which() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_commands_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SELENE_EVENT_LOOP", raising=False)
    assert loop.loop_name() == "uvloop"
    assert loop.run(_which()).startswith("uvloop")


def test_the_standard_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELENE_EVENT_LOOP", "asyncio")
    assert loop.loop_name() == "asyncio"
    assert loop.run(_which()).startswith("asyncio")
