"""Throwaway services for fault drills: a PostgreSQL cluster and one or three Kafka nodes of their own, on
their own ports and directories, so a drill may kill them without touching the shared local services."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from contracts.settings import LOCAL_ADMIN_PASSWORD, LOCAL_ADMIN_USER, Settings, local_database_url
from services import local
from services.kafka_node import KafkaNode, free_port, new_cluster_id, resolve_jars, voters_string
from services.postgres_node import PostgresNode, find_bin_dir, install_server, server_user
from services.provision import provision
from sql.migrate import migrate

# Kafka nodes take base+i and base+100+i: fixed, below Linux's ephemeral range (32768-60999), so no
# outgoing connection's source port can hold them. PostgreSQL's port is chosen by the OS per cluster.
FAULT_KAFKA_BASE = 29092


def _run(coro: object) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


@dataclass
class Stack:
    settings: Settings
    postgres: PostgresNode | None
    kafka: list[KafkaNode]


def _area(prefix: str, user: str | None) -> Path:
    area = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    if user is not None:
        shutil.chown(area, user)
    return area


@contextmanager
def postgres_cluster(port: int | None = None) -> Iterator[PostgresNode]:
    """A private cluster, provisioned and migrated, on ``port`` or one the OS reports free; removed afterwards."""
    port = free_port() if port is None else port
    bin_dir = find_bin_dir() or install_server()
    user = server_user()
    area = _area("selene-faults-pg-", user)
    node = PostgresNode(area, port, bin_dir, user)
    try:
        node.initdb(LOCAL_ADMIN_USER, LOCAL_ADMIN_PASSWORD)
        node.write_config()
        node.start()
        _run(provision(local_database_url(LOCAL_ADMIN_USER, port)))
        _run(migrate(local_database_url("selene_owner", port)))
        yield node
    finally:
        node.stop()
        shutil.rmtree(area, ignore_errors=True)


@contextmanager
def kafka_cluster(nodes: int = 1, base_port: int = FAULT_KAFKA_BASE) -> Iterator[list[KafkaNode]]:
    """``nodes`` combined broker+controller nodes (replication ``nodes``, min ISR 2 when 3); removed after."""
    lib_dir = local.state_dir() / "kafka" / "lib"
    resolve_jars(lib_dir)
    home = Path(tempfile.mkdtemp(prefix="selene-faults-kafka-"))
    ids = list(range(1, nodes + 1))
    voters = voters_string([(i, "127.0.0.1", base_port + 100 + i) for i in ids])
    cluster = [
        KafkaNode(
            node_id=i,
            port=base_port + i,
            controller_port=base_port + 100 + i,
            voters=voters,
            home=home / f"node{i}",
            lib_dir=lib_dir,
            heap="512m",
            replication_factor=nodes,
            min_insync_replicas=2 if nodes >= 3 else 1,
        )
        for i in ids
    ]
    cluster_id = new_cluster_id()
    try:
        for node in cluster:
            node.write_config()
            node.format_storage(cluster_id)
            node.start()
        for node in cluster:
            node.wait_ready(120)
        yield cluster
    finally:
        for node in cluster:
            node.stop(10)
        shutil.rmtree(home, ignore_errors=True)


def settings_for(
    base: Settings, *, postgres_port: int | None = None, kafka: list[KafkaNode] | None = None, prefix: str, group: str
) -> Settings:
    """``base`` pointed at the throwaway services (those given) with its own topics and group."""
    s = replace(base, topic_prefix=prefix, consumer_group=group)
    if postgres_port is not None:
        s = replace(
            s,
            database_url=local_database_url("selene_writer", postgres_port),
            database_owner_url=local_database_url("selene_owner", postgres_port),
            database_reader_url=local_database_url("selene_reader", postgres_port),
            database_operator_url=local_database_url("selene_operator", postgres_port),
            database_admin_url=local_database_url(LOCAL_ADMIN_USER, postgres_port),
        )
    if kafka:
        s = replace(s, kafka_bootstrap_servers=",".join(n.bootstrap for n in kafka), replication_factor=len(kafka))
    return s
