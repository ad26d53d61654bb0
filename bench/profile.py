"""Summaries of py-spy's collapsed stacks (``--format raw --idle``): where a mode's time goes.

Each line of the file is ``frame;frame;...;leaf count``, a frame being ``function (file:line)``. A sample
whose leaf is the selector's ``select`` is the event loop waiting (on PostgreSQL, Kafka or a timer);
everything else is the process running Python or C code. On uvloop (the commands' default, ``cli.loop``)
the loop is C, so py-spy sees its wait as the Python frame that entered it (``Runner.run``): those samples
are counted as ``loop_pct``, not busy, and they are mostly waiting; they also hold uvloop's own work and
the Cython protocol callbacks (asyncpg's) that run without a Python frame, so ``waiting_pct`` there is an
upper bound and ``busy_pct`` a lower one. Inclusive shares count a function once per
sample in which it is on the stack; self shares count the leaf only.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_IDLE_LEAVES = {"select", "poll", "epoll_wait", "_run_once_idle"}
_C_LOOP_LEAVES = {"Runner.run", "BaseEventLoop.run_until_complete"}


def _label(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('func')} ({file})"


def summarise(path: Path, top: int = 25) -> dict[str, Any]:
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = idle = c_loop = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_label(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        func = leaf.split(" ", 1)[0]
        if func.rsplit(".", 1)[-1] in _IDLE_LEAVES:
            idle += count
            continue
        if func in _C_LOOP_LEAVES:
            c_loop += count
            continue
        leaves[leaf] += count
        for label in set(frames):
            inclusive[label] += count
    if total == 0:
        return {"samples": 0}

    def share(n: int) -> float:
        return round(100.0 * n / total, 1)

    return {
        "samples": total,
        "waiting_pct": share(idle + c_loop),
        "busy_pct": share(total - idle - c_loop),
        "loop_pct": share(c_loop),
        "top_inclusive_pct": [[label, share(n)] for label, n in inclusive.most_common(top)],
        "top_self_pct": [[label, share(n)] for label, n in leaves.most_common(top)],
    }
