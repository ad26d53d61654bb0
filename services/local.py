"""The local services launcher: Kafka and PostgreSQL as plain processes for development, tests and CI.

No Docker engine is needed: the Kafka broker runs from jars that Maven resolves, PostgreSQL from
Debian's packages (installed with apt-get when missing and we are root). Everything a run leaves behind
lives in ``<project>/.selene`` (PostgreSQL may fall back to /var/tmp when the ``postgres`` OS user cannot
reach the checkout). A service whose address the environment gives (``SELENE_KAFKA_BOOTSTRAP_SERVERS``,
``SELENE_DATABASE_URL``), other than the local address, is external: nothing is started or stopped for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from contracts.settings import (
    LOCAL_ADMIN_PASSWORD,
    LOCAL_ADMIN_USER,
    LOCAL_DATABASE,
    LOCAL_KAFKA_CONTROLLER_PORT,
    LOCAL_KAFKA_PORT,
    LOCAL_POSTGRES_PORT,
    Settings,
    local_database_url,
)
from services.kafka_node import KafkaNode, jars_current, new_cluster_id, resolve_jars, voters_string
from services.postgres_node import PostgresNode, choose_area, find_bin_dir, install_server, server_user
from services.provision import provision

KAFKA = "kafka"
POSTGRES = "postgresql"
SERVICES = (KAFKA, POSTGRES)
_EXTERNAL_VAR = {KAFKA: "SELENE_KAFKA_BOOTSTRAP_SERVERS", POSTGRES: "SELENE_DATABASE_URL"}
_HOST = "127.0.0.1"

Progress = Callable[[str], None]


def _silent(_: str) -> None:
    pass


def project_dir() -> Path:
    """The checkout this launcher belongs to (``SELENE_HOME`` overrides, e.g. for an installed copy)."""
    home = os.environ.get("SELENE_HOME")
    return Path(home).resolve() if home else Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    return project_dir() / ".selene"


def _local_address(service: str) -> str:
    return f"{_HOST}:{LOCAL_KAFKA_PORT}" if service == KAFKA else local_database_url("selene_writer")


def is_external(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """True if the environment names an address for ``service`` other than the local one.

    The local address itself does not count, so a shell that ran ``eval "$(selene-ledger services
    env)"`` can still stop and restart the local services.
    """
    value = (os.environ if environ is None else environ).get(_EXTERNAL_VAR[service])
    return bool(value) and value != _local_address(service)


def kafka_node() -> KafkaNode:
    """The single local node: broker and controller in one JVM, loopback only."""
    home = state_dir() / "kafka"
    return KafkaNode(
        node_id=1,
        port=LOCAL_KAFKA_PORT,
        controller_port=LOCAL_KAFKA_CONTROLLER_PORT,
        voters=voters_string([(1, _HOST, LOCAL_KAFKA_CONTROLLER_PORT)]),
        home=home,
        lib_dir=home / "lib",
        host=_HOST,
    )


def _postgres_areas() -> tuple[Path, Path]:
    """Where the cluster lives: in the checkout, or a per-checkout directory the server user can reach."""
    digest = hashlib.sha256(str(project_dir()).encode()).hexdigest()[:12]
    # /var/tmp survives reboots, unlike /tmp; choose_area refuses a parent someone else planted there.
    fallback = Path("/var/tmp") / f"selene-ledger-{digest}" / "postgres"  # noqa: S108
    return state_dir() / "postgres", fallback


def postgres_node(*, create: bool = False) -> PostgresNode | None:
    """The local cluster, or None if it was never initialised (and ``create`` is false)."""
    # Without binaries nothing can be running; status() still works, and up() installs them first.
    bin_dir = find_bin_dir() or Path("/usr/lib/postgresql/missing/bin")
    preferred, fallback = _postgres_areas()
    for area in (preferred, fallback):
        if (area / "data" / "PG_VERSION").is_file():
            return PostgresNode(area, LOCAL_POSTGRES_PORT, bin_dir, server_user())
    if not create:
        return None
    area = choose_area(preferred, fallback, server_user())
    return PostgresNode(area, LOCAL_POSTGRES_PORT, bin_dir, server_user())


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One launcher at a time per checkout (a test session and a developer may call up() together)."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with (state_dir() / "services.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion in a fresh thread, clear of any event loop the caller owns."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def _start_kafka(node: KafkaNode, progress: Progress) -> None:
    """Resolve jars, write config, format on first use and launch; does not wait for readiness."""
    pid = node.pid()
    if pid is not None and (not jars_current(node.lib_dir) or not node.config_is_current()):
        progress(f"kafka: pom or config changed, restarting the broker (pid {pid})")
        node.stop()
        pid = None
    if pid is not None:
        progress(f"kafka: already running (pid {pid})")
        return
    started = time.monotonic()
    if resolve_jars(node.lib_dir):
        progress(f"kafka: resolved broker jars with Maven in {time.monotonic() - started:.1f} s")
    node.write_config()
    if not node.is_formatted():
        started = time.monotonic()
        node.format_storage(new_cluster_id())
        progress(f"kafka: formatted {node.data_dir} in {time.monotonic() - started:.1f} s")
    node.start()
    progress(f"kafka: starting (pid {node.pid()}), logs in {node.logs_dir}")


def _start_postgres(progress: Progress) -> PostgresNode:
    """Install if needed, initdb on first use, (re)start when stopped or its config changed."""
    if find_bin_dir() is None:
        progress("postgresql: server binaries missing, installing Debian's postgresql with apt-get")
        install_server()
    node = postgres_node(create=True)
    assert node is not None
    if not node.is_initialised():
        started = time.monotonic()
        node.initdb(LOCAL_ADMIN_USER, LOCAL_ADMIN_PASSWORD)
        progress(f"postgresql: initdb {node.data_dir} in {time.monotonic() - started:.1f} s")
    changed = node.write_config()
    pid = node.pid()
    if pid is not None and changed:
        progress(f"postgresql: config changed, restarting (pid {pid})")
        node.restart()
    elif pid is not None:
        progress(f"postgresql: already running (pid {pid})")
    else:
        started = time.monotonic()
        node.start()
        progress(f"postgresql: started (pid {node.pid()}) in {time.monotonic() - started:.1f} s")
    return node


def up(progress: Progress = _silent) -> dict[str, str]:
    """Make both services available and the database provisioned; idempotent. Returns ``env()``.

    Kafka is launched first and waited for last, so PostgreSQL's start-up overlaps the JVM's.
    An external database is provisioned only when ``SELENE_DATABASE_ADMIN_URL`` is given too.
    """
    with _locked():
        kafka = None if is_external(KAFKA) else kafka_node()
        if kafka is not None:
            _start_kafka(kafka, progress)
        admin_url = os.environ.get("SELENE_DATABASE_ADMIN_URL")
        if not is_external(POSTGRES):
            _start_postgres(progress)
            admin_url = local_database_url(LOCAL_ADMIN_USER)
        if admin_url:
            started = time.monotonic()
            database = urlsplit(Settings.from_env(os.environ).database_url).path.lstrip("/")
            _run_async(provision(admin_url, database or LOCAL_DATABASE))
            progress(f"postgresql: roles and database provisioned in {time.monotonic() - started:.1f} s")
        if kafka is not None:
            started = time.monotonic()
            kafka.wait_ready()
            progress(f"kafka: answering at {kafka.bootstrap} (waited {time.monotonic() - started:.1f} s)")
    return env()


def down(services: tuple[str, ...] = SERVICES, progress: Progress = _silent) -> None:
    """Stop the local services (data stays); idempotent, and a no-op for external ones."""
    with _locked():
        if KAFKA in services and not is_external(KAFKA) and kafka_node().stop():
            progress("kafka: stopped")
        node = postgres_node()
        if POSTGRES in services and not is_external(POSTGRES) and node is not None and node.stop():
            progress("postgresql: stopped")


def reset(progress: Progress = _silent) -> None:
    """Stop the local services and delete their data and logs; the resolved Kafka jars are kept."""
    down(progress=progress)
    with _locked():
        node = kafka_node()
        if not is_external(KAFKA) and node.home.exists():
            for path in (node.data_dir, node.logs_dir):
                shutil.rmtree(path, ignore_errors=True)
            for path in (node.config_path, node.pid_path):
                path.unlink(missing_ok=True)
            progress(f"kafka: deleted {node.data_dir} and {node.logs_dir}")
        preferred, fallback = _postgres_areas()
        for area in (preferred, fallback) if not is_external(POSTGRES) else ():
            if area.exists():
                shutil.rmtree(area)
                progress(f"postgresql: deleted {area}")
        with contextlib.suppress(OSError):  # only if empty: never delete what we did not create
            fallback.parent.rmdir()


def running_services() -> list[str]:
    """The local (not external) services that run now."""
    running = []
    if not is_external(KAFKA) and kafka_node().pid() is not None:
        running.append(KAFKA)
    node = postgres_node()
    if not is_external(POSTGRES) and node is not None and node.pid() is not None:
        running.append(POSTGRES)
    return running


def is_up() -> bool:
    """True if every service that is not external runs locally."""
    return set(running_services()) == {s for s in SERVICES if not is_external(s)}


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port or 5432}{parts.path}"


def status() -> list[str]:
    """One human line per service: where it runs (pid, address), or that it does not, or is external."""
    settings = Settings.from_env(os.environ)
    lines = []
    if is_external(KAFKA):
        lines.append(f"kafka: external at {settings.kafka_bootstrap_servers}")
    else:
        node = kafka_node()
        pid = node.pid()
        lines.append(
            f"kafka: running (pid {pid}) at {node.bootstrap}, logs in {node.logs_dir}"
            if pid is not None
            else f"kafka: not running (would listen on {node.bootstrap})"
        )
    if is_external(POSTGRES):
        lines.append(f"postgresql: external at {_redacted(settings.database_url)}")
    else:
        pg = postgres_node()
        pg_pid = pg.pid() if pg is not None else None
        address = f"{_HOST}:{LOCAL_POSTGRES_PORT}"
        if pg is None:
            lines.append(f"postgresql: not initialised (would listen on {address})")
        elif pg_pid is None:
            lines.append(f"postgresql: not running (would listen on {address}), data in {pg.data_dir}")
        else:
            lines.append(f"postgresql: running (pid {pg_pid}) at {address}, data in {pg.data_dir}")
    return lines


def env() -> dict[str, str]:
    """The ``SELENE_*`` addresses clients need: the local services' unless given externally."""
    settings = Settings.from_env(os.environ)
    values = {
        "SELENE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SELENE_DATABASE_URL": settings.database_url,
        "SELENE_DATABASE_OWNER_URL": settings.database_owner_url,
        "SELENE_DATABASE_READER_URL": settings.database_reader_url,
        "SELENE_DATABASE_OPERATOR_URL": settings.database_operator_url,
    }
    if settings.database_admin_url:
        values["SELENE_DATABASE_ADMIN_URL"] = settings.database_admin_url
    return values
