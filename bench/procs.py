"""Running a mode's child process (optionally under py-spy) and reading what it printed."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.env import settings_to_json
from contracts.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent  # children import ``bench`` from the checkout


class BenchError(RuntimeError):
    """A mode failed; the message carries the child's exit code and the tail of its stderr."""


def spec_json(mode: str, settings: Settings, params: dict[str, Any]) -> bytes:
    return json.dumps({"mode": mode, "settings": settings_to_json(settings), "params": params}).encode()


def _py_spy(profile: Path, rate: int) -> list[str]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    # --idle keeps the samples where the event loop waits (on PostgreSQL or Kafka), so the profile shows
    # CPU work and waiting in one picture; raw (collapsed stacks) is what bench.profile summarises.
    return [py_spy, "record", "--idle", "--format", "raw", "--rate", str(rate), "-o", str(profile)]


def child_command(profile: Path | None = None, rate: int = 100) -> list[str]:
    cmd = [sys.executable, "-m", "bench.child"]
    if profile is None:
        return cmd
    return [*_py_spy(profile, rate), "--", *cmd]


def parse_output(mode: str, rc: int, stdout: str, stderr_path: Path) -> dict[str, Any]:
    lines = stdout.splitlines()
    result = next((line for line in reversed(lines) if line.startswith("RESULT ")), None)
    if rc != 0 or result is None:
        tail = stderr_path.read_text(errors="replace")[-3000:] if stderr_path.exists() else ""
        raise BenchError(f"mode {mode} failed (exit {rc}):\n{tail}")
    doc: dict[str, Any] = json.loads(result[len("RESULT ") :])
    progress = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("PROGRESS ")]
    if progress:
        doc["progress"] = progress
    return doc


def _stderr_path(logs: Path, mode: str) -> Path:
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{mode}.stderr"


async def run_child(
    mode: str,
    settings: Settings,
    params: dict[str, Any],
    logs: Path,
    profile: Path | None = None,
    log_name: str | None = None,
) -> dict[str, Any]:
    """Run one mode to completion in its own process and return its result (``log_name``: its stderr file's
    name when several children of one mode run at once)."""
    stderr_path = _stderr_path(logs, log_name or mode)
    with stderr_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *child_command(profile),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            cwd=PROJECT_DIR,
        )
        out, _ = await proc.communicate(spec_json(mode, settings, params))
    assert proc.returncode is not None
    return parse_output(mode, proc.returncode, out.decode(errors="replace"), stderr_path)


class Background:
    """A long-running mode (the latency writer): started now, stopped with SIGTERM later."""

    def __init__(
        self, mode: str, settings: Settings, params: dict[str, Any], logs: Path, profile: Path | None = None
    ) -> None:
        self.mode, self.settings, self.params, self.logs = mode, settings, params, logs
        self.profile = profile
        self.proc: asyncio.subprocess.Process | None = None
        self.spy: asyncio.subprocess.Process | None = None
        self._stdout: asyncio.Task[bytes] | None = None

    async def start(self) -> None:
        err = _stderr_path(self.logs, self.mode).open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            *child_command(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err, cwd=PROJECT_DIR
        )
        err.close()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(spec_json(self.mode, self.settings, self.params))
        await self.proc.stdin.drain()
        self.proc.stdin.close()
        self._stdout = asyncio.ensure_future(self.proc.stdout.read())
        if self.profile is not None:  # attached by pid (not wrapping it), so that SIGTERM reaches the writer
            self.spy = await asyncio.create_subprocess_exec(
                *_py_spy(self.profile, 100),
                "--pid",
                str(self.proc.pid),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, within: float = 60.0) -> dict[str, Any]:
        assert self.proc is not None and self._stdout is not None
        if self.proc.returncode is None:
            self.proc.terminate()  # our own child, by its pid: the writer stops after its batch in flight
        out = await asyncio.wait_for(self._stdout, within)
        rc = await self.proc.wait()
        if self.spy is not None:  # py-spy writes its file when the process it watches has exited
            await asyncio.wait_for(self.spy.wait(), within)
        return parse_output(self.mode, rc, out.decode(errors="replace"), self.logs / f"{self.mode}.stderr")
