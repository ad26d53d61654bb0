"""Transport security (issue 8): PostgreSQL over TLS with ``verify-full``, Kafka over SASL_SSL with SCRAM.

Each half starts its own throwaway server with the project's launchers (services/postgres_node.py and
services/kafka_node.py) configured for TLS only, with certificates from a CA made for the test, and checks the
three outcomes that matter: the right CA (and credentials) connect, plaintext is refused, and a server whose
certificate does not chain to the configured CA (or does not name the host) is refused. The client settings
are the project's own: URLs with ``sslmode=verify-full&sslrootcert=...`` (passed through untouched by
``contracts.settings``) and ``SELENE_KAFKA_SECURITY_PROTOCOL`` and friends (``KafkaSecurity``).

PostgreSQL client certificates need no setting of their own either: asyncpg reads ``sslcert`` and ``sslkey``
from the URL's query, so one role's pg_hba line may require ``cert`` (``clientcert=verify-full``: a
certificate from the server's CA whose common name is the login) and the same URL mechanism carries it.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from consumers.db import connect
from consumers.status import lag
from consumers.writer import LedgerWriter
from contracts.audit import AuditRecordedEvent
from contracts.envelope import new_event
from contracts.reasons import RetriableError
from contracts.settings import KafkaSecurity, Settings, role_url
from producers.publisher import Publisher
from producers.topics import ensure_topics
from services import local
from services.kafka_node import LOG4J2, KafkaNode, kafka_node_config, new_cluster_id, render_properties
from services.postgres_node import PostgresNode, _chown, choose_area, find_bin_dir, server_user
from services.provision import provision
from sql.migrate import migrate
from tests.integration.tlscerts import CertificateAuthority, Issued

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN_PASSWORD = "tls-admin-" + uuid.uuid4().hex[:12]
CERT_USER = "selene_cert_login"
SCRAM_PASSWORD = "scram-" + uuid.uuid4().hex[:12]


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there, else any free loopback port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise AssertionError("no free port")


# -- settings: URLs pass through untouched ---------------------------------------------------------------------


def test_settings_pass_tls_url_parameters_through_to_every_role() -> None:
    query = "sslmode=verify-full&sslrootcert=%2Fetc%2Fselene%2Fca.pem"
    writer = f"postgresql://selene_writer:pw@localhost:5432/selene?{query}"
    settings = Settings.from_env({"SELENE_DATABASE_URL": writer})
    assert settings.database_url == writer
    for url in (settings.database_owner_url, settings.database_reader_url, settings.database_operator_url):
        assert url.endswith(f"@localhost:5432/selene?{query}"), url
    # (deriving the role URLs, with the local passwords, is refused for any other host: tests/unit/test_settings.py)
    security = Settings.from_env(
        {
            "SELENE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SELENE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "SELENE_KAFKA_SASL_USERNAME": "selene",
            "SELENE_KAFKA_SASL_PASSWORD": "secret",
        }
    ).kafka_security
    kwargs = security.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert "secret" not in repr(security)


# -- PostgreSQL ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsPostgresNode(PostgresNode):
    """The project's cluster launcher with TLS on and every TCP login required to use it (hostssl only)."""

    cert: Path = Path()
    key: Path = Path()
    client_ca: Path = Path()

    def config_text(self) -> str:
        return super().config_text() + (
            "listen_addresses = '127.0.0.1,127.0.0.2'\n"  # .2: a name the certificate does not carry
            "shared_buffers = '32MB'\nmax_connections = 30\n"
            f"ssl = on\nssl_cert_file = '{self.cert}'\nssl_key_file = '{self.key}'\n"
            f"ssl_ca_file = '{self.client_ca}'\n"  # the CA client certificates must chain to
            "ssl_min_protocol_version = 'TLSv1.2'\n"
        )

    def write_config(self) -> bool:
        changed = super().write_config()
        # CERT_USER logs in by client certificate only (``cert`` implies clientcert=verify-full); others by
        # password, over TLS only.
        hba = (
            f"local all all peer\nhostssl all {CERT_USER} 127.0.0.0/8 cert\nhostssl all all 127.0.0.0/8 scram-sha-256\n"
        )
        (self.data_dir / "pg_hba.conf").write_text(hba)
        return changed


@dataclass(frozen=True)
class TlsPostgres:
    port: int
    ca: Path
    other_ca: Path
    client: Issued  # CN = CERT_USER, from the server's CA
    client_other_ca: Issued  # CN = CERT_USER, from another CA
    client_other_user: Issued  # from the server's CA, for another login

    def url(self, *, host: str = "127.0.0.1", sslmode: str = "verify-full", ca: Path | None = None) -> str:
        query = f"sslmode={sslmode}"
        if sslmode != "disable":
            query += f"&sslrootcert={quote(str(ca or self.ca), safe='')}"
        return f"postgresql://postgres:{ADMIN_PASSWORD}@{host}:{self.port}/postgres?{query}"

    def cert_url(self, client: Issued | None) -> str:
        """CERT_USER's URL (no password), with ``client``'s certificate and key in the query when given."""
        query = f"sslmode=verify-full&sslrootcert={quote(str(self.ca), safe='')}"
        if client is not None:
            query += f"&sslcert={quote(str(client.cert), safe='')}&sslkey={quote(str(client.key), safe='')}"
        return f"postgresql://{CERT_USER}@127.0.0.1:{self.port}/postgres?{query}"


@pytest.fixture(scope="module")
def tls_postgres() -> Iterator[TlsPostgres]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): ./run bootstrap installs them")
    user = server_user()
    root = Path(tempfile.mkdtemp(prefix="selene-tls-pg-"))
    try:
        area = choose_area(root / "pg", root / "pg-fallback", user)
        ca = CertificateAuthority("selene test CA")
        other = CertificateAuthority("some other CA")
        server: Issued = ca.issue(area, "server", dns=["localhost"], ips=["127.0.0.1"])
        client_ca = ca.write(area / "client-ca.pem")
        for path in (server.cert, server.key, client_ca):
            _chown(path, user)  # the server reads its key only if it owns it (mode 0600)
        node = TlsPostgresNode(
            area, free_port(55532), bin_dir, user, cert=server.cert, key=server.key, client_ca=client_ca
        )
        node.initdb("postgres", ADMIN_PASSWORD)
        node.write_config()
        node.start()
        try:
            yield TlsPostgres(
                node.port,
                ca.write(root / "ca.pem"),
                other.write(root / "other-ca.pem"),
                client=ca.issue_client(root, "client", CERT_USER),
                client_other_ca=other.issue_client(root, "client-other-ca", CERT_USER),
                client_other_user=ca.issue_client(root, "client-other-user", "postgres"),
            )
        finally:
            node.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def test_postgres_verify_full_with_the_right_ca_connects_encrypted(tls_postgres: TlsPostgres) -> None:
    for host in ("127.0.0.1", "localhost"):
        conn = await asyncpg.connect(tls_postgres.url(host=host))
        try:
            row = await conn.fetchrow("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert row is not None and row["ssl"] is True and row["version"].startswith("TLSv1."), host
        finally:
            await conn.close()


async def test_postgres_plaintext_is_refused_by_pg_hba(tls_postgres: TlsPostgres) -> None:
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):  # 28000: no pg_hba entry, no encryption
        await asyncpg.connect(tls_postgres.url(sslmode="disable"))


async def test_postgres_wrong_ca_is_refused(tls_postgres: TlsPostgres) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(tls_postgres.url(ca=tls_postgres.other_ca))


async def test_postgres_verify_full_refuses_a_host_the_certificate_does_not_name(tls_postgres: TlsPostgres) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(tls_postgres.url(host="127.0.0.2"))
    # verify-ca checks the chain only: the same server then connects, so the refusal above is the name check.
    conn = await asyncpg.connect(tls_postgres.url(host="127.0.0.2", sslmode="verify-ca"))
    await conn.close()


async def test_the_project_runs_over_verify_full_through_its_settings(tls_postgres: TlsPostgres) -> None:
    """Provision, migrate and connect as every role with URLs that carry the TLS parameters (nothing else)."""
    admin_url = tls_postgres.url().replace("/postgres?", "/selene?")
    await provision(admin_url, "selene")
    writer_url = role_url(admin_url, "selene_writer", "selene_writer_local")
    settings = Settings.from_env({"SELENE_DATABASE_URL": writer_url, "SELENE_DATABASE_ADMIN_URL": admin_url})
    await migrate(settings.database_owner_url)
    for url in (settings.database_url, settings.database_reader_url, settings.database_operator_url):
        assert "sslmode=verify-full" in url
        conn = await connect(url)
        try:
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
        finally:
            await conn.close()


async def test_postgres_client_certificate_required_by_pg_hba_cert(tls_postgres: TlsPostgres) -> None:
    """pg_hba ``hostssl ... cert`` for one login: with its certificate (in the URL, through the project's
    settings and connect) it connects; without one, with one from another CA or for another login, refused."""
    admin = await asyncpg.connect(tls_postgres.url())
    try:
        if not await admin.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", CERT_USER):
            await admin.execute(f"CREATE ROLE {CERT_USER} LOGIN")  # no password: the certificate is the credential
    finally:
        await admin.close()

    settings = Settings.from_env({"SELENE_DATABASE_URL": tls_postgres.cert_url(tls_postgres.client)})
    assert "sslcert=" in settings.database_url and "sslkey=" in settings.database_url  # passed through untouched
    conn = await connect(settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT current_user AS login, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        assert row is not None and row["login"] == CERT_USER and row["ssl"] is True
        assert row["client_dn"] == f"/CN={CERT_USER}"
    finally:
        await conn.close()

    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):  # 28000: a certificate is required
        await asyncpg.connect(tls_postgres.cert_url(None))
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):  # 28000: its CN names another login
        await asyncpg.connect(tls_postgres.cert_url(tls_postgres.client_other_user))
    # A certificate the server's CA did not sign fails the TLS handshake on the server's side: under TLS 1.3
    # the client has already finished its half, so it sees the server's alert or just the connection closed.
    with pytest.raises((ssl.SSLError, ConnectionError, asyncpg.ConnectionDoesNotExistError)):
        await asyncpg.connect(tls_postgres.cert_url(tls_postgres.client_other_ca))


# -- Kafka --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureKafkaNode(KafkaNode):
    """The project's node with one client listener, SASL_SSL with SCRAM-SHA-512 (inter-broker too)."""

    extra: tuple[tuple[str, str], ...] = ()

    def properties(self) -> str:
        config = kafka_node_config(
            self.node_id, self.port, self.controller_port, self.voters, self.data_dir, host=self.host
        )
        config.update(self.extra)
        return render_properties(config)

    def format_with_scram(self, cluster_id: str, credentials: dict[str, str]) -> None:
        """``kafka-storage format --add-scram``: SCRAM users exist from the first start (KRaft has no ZooKeeper
        to add them to later without a running broker)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            "java", "-cp", f"{self.lib_dir}/*", f"-Dlog4j2.configurationFile={LOG4J2}",
            f"-Dkafka.logs.dir={self.logs_dir}", "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(self.config_path),
        ]  # fmt: skip
        for name, password in credentials.items():
            cmd += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stdout + result.stderr


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    ca: Path
    other_ca: Path

    def settings(self, base: Settings, *, password: str = SCRAM_PASSWORD, ca: Path | None = None) -> Settings:
        security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "selene", password, str(ca or self.ca))
        return replace(base, kafka_bootstrap_servers=self.bootstrap, kafka_security=security)


async def _ready(settings: Settings, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await ensure_topics(replace(settings, topic_prefix="readiness."))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
async def secure_kafka(migrated: Settings) -> AsyncIterator[SecureKafka]:
    lib_dir = local.kafka_node().lib_dir
    if shutil.which("java") is None or not any(lib_dir.glob("kafka_*.jar")):
        pytest.skip(f"no java or no Kafka jars in {lib_dir}: ./run bootstrap resolves them")
    root = Path(tempfile.mkdtemp(prefix="selene-tls-kafka-"))
    ca = CertificateAuthority("selene test CA")
    server = ca.issue(root, "broker", dns=["localhost"], ips=["127.0.0.1"])
    keystore = root / "broker-keystore.pem"  # ssl.keystore.type=PEM: the key and its chain in one file
    keystore.write_bytes(server.key.read_bytes() + server.cert.read_bytes())
    ca_pem = ca.write(root / "ca.pem")
    broker_password = uuid.uuid4().hex
    port, controller_port = free_port(29192), free_port(29193)
    jaas = 'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="{}";'
    node = SecureKafkaNode(
        node_id=1,
        port=port,
        controller_port=controller_port,
        voters=f"1@127.0.0.1:{controller_port}",
        home=root / "kafka",
        lib_dir=lib_dir,
        heap="512m",
        extra=(
            ("listeners", f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
            ("advertised.listeners", f"SASL_SSL://127.0.0.1:{port}"),
            ("listener.security.protocol.map", "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"),
            ("inter.broker.listener.name", "SASL_SSL"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            ("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config", jaas.format(broker_password)),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", str(keystore)),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", str(ca_pem)),
            ("ssl.client.auth", "none"),
        ),
    )
    node.write_config()
    node.format_with_scram(new_cluster_id(), {"selene": SCRAM_PASSWORD, "broker": broker_password})
    node.start()
    try:
        kafka = SecureKafka(node.bootstrap, ca_pem, CertificateAuthority("some other CA").write(root / "other-ca.pem"))
        try:
            await _ready(kafka.settings(migrated))
        except Exception as exc:
            raise AssertionError(f"the SASL_SSL broker did not come up: {exc}\n{node.log_tail()}") from exc
        yield kafka
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_kafka_sasl_ssl_with_the_right_credentials_and_ca_carries_the_pipeline(
    secure_kafka: SecureKafka, migrated: Settings
) -> None:
    """Publish, consume, and drain into the ledger with the writer, all over SASL_SSL + SCRAM-SHA-512."""
    run = uuid.uuid4().hex[:8]
    settings = replace(
        secure_kafka.settings(migrated), topic_prefix=f"sec{run}.", consumer_group=f"sec-{run}", topic_partitions=1
    )
    await ensure_topics(settings)
    tenant = f"tenant-{run}"
    event = new_event(
        AuditRecordedEvent, tenant_id=tenant, engine_id="PH1.NLP", correlation_id=f"c-{run}",
        occurred_at=datetime.now(UTC), payload={"reason_code": "TLS_OK", "summary": "over SASL_SSL"},
    )  # fmt: skip
    async with Publisher(settings) as publisher:
        published = await publisher.publish(event)
    consumer = AIOKafkaConsumer(
        published.topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_security.client_kwargs(),
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert message.key == event.kafka_key
    stats = await LedgerWriter(settings).run(until_caught_up=True)
    assert stats.result.appended == 1
    conn = await connect(settings.database_operator_url)
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM os_core.audit_events WHERE event_uuid = $1", event.event_id) == 1
        )
        assert all(x.lag == 0 for x in await lag(settings, conn))
    finally:
        await conn.close()


@pytest.mark.parametrize("case", ["wrong password", "wrong CA", "plaintext"])
async def test_kafka_refuses_bad_credentials_untrusted_servers_and_plaintext(
    secure_kafka: SecureKafka, migrated: Settings, case: str
) -> None:
    if case == "wrong password":
        settings = secure_kafka.settings(migrated, password="not-" + SCRAM_PASSWORD)
    elif case == "wrong CA":
        settings = secure_kafka.settings(migrated, ca=secure_kafka.other_ca)
    else:
        settings = replace(migrated, kafka_bootstrap_servers=secure_kafka.bootstrap, kafka_security=KafkaSecurity())
    publisher = Publisher(settings, request_timeout_ms=5000)
    with pytest.raises(RetriableError) as info:
        await asyncio.wait_for(publisher.start(), timeout=60)
    assert info.value.reason_code == "BROKER_UNAVAILABLE"
    await publisher.stop()
