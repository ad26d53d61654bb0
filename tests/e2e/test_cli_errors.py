"""Errors a user causes end in one clear line and a documented exit code, never a traceback (real CLI, real
services): a bad setting, PostgreSQL or Kafka unreachable, a reader that closes the pipe early."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from contracts.settings import Settings
from services.provision import provision
from tests.e2e.helpers import CLI, cli_env

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(args: list[str], env: dict[str, str], **options: object) -> subprocess.CompletedProcess[str]:
    run: Any = subprocess.run  # to_thread cannot type subprocess.run's overloads
    return await asyncio.to_thread(
        run,
        [*CLI, *args],
        env=env,
        cwd=ROOT,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **options},
    )


def _ours(stderr: str) -> list[str]:
    """stderr less aiokafka's own log lines (it logs each failed connection attempt itself)."""
    return [line for line in stderr.splitlines() if " ERROR aiokafka" not in line]


async def test_a_bad_setting_names_the_variable(topics: Settings) -> None:
    env = {**cli_env(topics), "SELENE_TOPIC_PARTITIONS": "three"}
    done = await _run(["status"], env)
    assert done.returncode == 2, done
    assert _ours(done.stderr) == [
        "selene-ledger: bad setting: SELENE_TOPIC_PARTITIONS='three': "
        "Input should be a valid integer, unable to parse string as an integer"
    ]
    assert done.stdout == ""


async def test_database_unreachable_is_one_line(topics: Settings) -> None:
    port = _closed_port()
    url = f"postgresql://selene_operator:secret@127.0.0.1:{port}/selene"
    for command, variable in ((["status"], "SELENE_DATABASE_OPERATOR_URL"), (["consume"], "SELENE_DATABASE_URL")):
        done = await _run(command, {**cli_env(topics), variable: url})
        assert done.returncode == 4, done
        (line,) = _ours(done.stderr)
        assert line.startswith(f"selene-ledger {command[0]}: cannot connect to PostgreSQL"), line
        assert "secret" not in done.stderr


async def test_broker_unreachable_is_one_line(topics: Settings) -> None:
    env = {**cli_env(topics), "SELENE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}"}
    for command in ("status", "consume"):
        done = await _run([command], env)
        assert done.returncode == 4, done
        assert _ours(done.stderr) == [
            f"selene-ledger {command}: cannot reach Kafka (KafkaConnectionError: Unable to bootstrap from "
            f"[('127.0.0.1', {env['SELENE_KAFKA_BOOTSTRAP_SERVERS'].split(':')[1]}, <AddressFamily.AF_INET: 2>)]); "
            "check SELENE_KAFKA_BOOTSTRAP_SERVERS"
        ], done.stderr


async def test_a_closed_pipe_is_not_a_traceback(topics: Settings) -> None:
    """The reader is gone before the first byte is written (deterministic: the read end is closed first), and
    the shell pipeline of the issue itself."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = await _run(["status", "--json"], cli_env(topics), stdout=write, stderr=subprocess.PIPE)
    finally:
        os.close(write)
    assert done.returncode == 141, done
    assert done.stderr == ""

    cli = " ".join(CLI)
    shell = await asyncio.to_thread(
        subprocess.run,
        ["sh", "-c", f"{cli} status --json | head -c 10"],
        env=cli_env(topics),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert len(shell.stdout) == 10, shell.stdout
    assert "Traceback" not in shell.stderr and "BrokenPipeError" not in shell.stderr, shell.stderr


async def test_a_metrics_address_in_use_is_one_line(topics: Settings) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = await _run(["consume", "--metrics", f"127.0.0.1:{port}"], cli_env(topics))
    assert done.returncode == 2, done
    assert _ours(done.stderr) == [
        f"selene-ledger consume: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    ]


async def test_a_database_behind_the_schema_is_one_line(topics: Settings, run_id: str) -> None:
    """A newer selene-ledger against a database its migrations have not reached (here: none applied) says
    to migrate instead of ending in UndefinedTableError's traceback."""
    admin = os.environ.get("SELENE_DATABASE_ADMIN_URL") or topics.database_admin_url
    if not admin:
        pytest.skip("no admin URL to create an empty database with")
    empty = f"selene_unmigrated_{run_id}"
    await provision(admin, empty)
    url = urlunsplit(urlsplit(topics.database_operator_url)._replace(path=f"/{empty}"))
    done = await _run(["status"], {**cli_env(topics), "SELENE_DATABASE_OPERATOR_URL": url})
    assert done.returncode == 4, done
    (line,) = _ours(done.stderr)
    assert line.startswith("selene-ledger status: the database is behind this build's schema"), line
    assert line.endswith("run `selene-ledger migrate`"), line
