"""The event loop every long-running command runs on: uvloop when it is installed, asyncio's own otherwise.

Why: the writer is a loop of small awaits (a dozen-odd PostgreSQL round trips per batch, Kafka fetches,
decode slices), so the loop's own cost per await is part of every batch's fixed cost. asyncpg is built
for uvloop (its benchmarks run on it). ``SELENE_EVENT_LOOP=asyncio`` picks the standard loop, e.g. to
compare the two or to rule uvloop out when chasing a bug.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default loop."""
    if os.environ.get("SELENE_EVENT_LOOP", "uvloop").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name() -> str:
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
