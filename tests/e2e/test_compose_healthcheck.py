"""docker-compose.yml's writer healthcheck, run as compose runs it, against the writer command compose runs.

No Docker engine here, so the container is left out, not the commands: the healthcheck's python code is taken
from the compose file (its port swapped for a free one) and run against ``selene-ledger consume --metrics``
started as a process with the test's services. It must fail while the writer has no topics (what the
compose ``topics`` one-shot prevents) and when nothing answers, and pass once the writer is ready.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from contracts.settings import Settings
from producers.topics import ensure_topics
from tests.e2e.helpers import CLI, cli_env

pytestmark = pytest.mark.e2e

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthcheck_code(port: int) -> str:
    writer = yaml.safe_load(COMPOSE.read_text())["services"]["writer"]
    compose_port = writer["command"][writer["command"].index("--metrics") + 1].rsplit(":", 1)[1]
    test = writer["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code: str = test[3]
    assert code.count(f":{compose_port}/") == 1
    return code.replace(f":{compose_port}/", f":{port}/")


async def healthcheck(port: int) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", healthcheck_code(port),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await asyncio.wait_for(proc.wait(), 30)


@asynccontextmanager
async def writer_process(settings: Settings, port: int) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, "consume", "--metrics", f"127.0.0.1:{port}", env=cli_env(settings),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


async def _answered(port: int, seconds: float = 60) -> int:
    """The endpoint's first HTTP status once it answers at all."""
    deadline = time.monotonic() + seconds
    while (status := await asyncio.to_thread(_status, port)) is None:
        assert time.monotonic() < deadline, "the writer never served /health/ready"
        await asyncio.sleep(0.5)
    return status


async def _until(port: int, rc_ok: bool, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while (await healthcheck(port) == 0) != rc_ok:
        assert time.monotonic() < deadline, f"healthcheck never {'passed' if rc_ok else 'failed'}"
        await asyncio.sleep(1)


async def test_healthcheck_fails_without_topics_and_passes_once_ready(settings: Settings) -> None:
    port = _free_port()
    assert await healthcheck(port) != 0  # nothing answers
    async with writer_process(settings, port):
        # The topics do not exist yet: the writer runs and answers, but claims nothing, so it is not ready.
        assert await _answered(port) == 503
        assert await healthcheck(port) != 0
    port = _free_port()
    await ensure_topics(settings)  # what the compose topics service does before the writer starts
    async with writer_process(replace(settings, consumer_group=settings.consumer_group + "-2"), port):
        await _until(port, rc_ok=True)
    assert await healthcheck(port) != 0  # stopped: nothing answers again
