"""Settings shared by the publisher, the writer, the replay and the CLI, read from the environment.

Every setting has a default that points at the local services started by ``selene-ledger services up``
(loopback only), so a fresh checkout works without configuration; a deployment overrides them with
``SELENE_*`` variables, parsed by pydantic-settings (``Environment``) so that every error names the
variable. contracts/ depends on nothing of ours: the standard library, pydantic and pydantic-settings.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, NonNegativeInt, PositiveInt, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

log = logging.getLogger("selene.settings")

# Fixed local ports lie below Linux's ephemeral range (32768-60999): a port inside it can be held at any
# moment by some outgoing connection's source port, and the service then fails to start.
LOCAL_KAFKA_PORT = 19092
LOCAL_KAFKA_CONTROLLER_PORT = 19093
LOCAL_POSTGRES_PORT = 15432
LOCAL_DATABASE = "selene"

# Local development passwords. They guard only loopback services started by this project; a deployment
# supplies its own URLs through the environment.
ROLE_PASSWORDS: Mapping[str, str] = {
    "selene_owner": "selene_owner_local",
    "selene_writer": "selene_writer_local",
    "selene_reader": "selene_reader_local",
    "selene_operator": "selene_operator_local",
}
LOCAL_ADMIN_USER = "postgres"
LOCAL_ADMIN_PASSWORD = "selene_admin_local"


def role_url(base_url: str, role: str, password: str) -> str:
    """The same server and database as ``base_url``, logged in as ``role``."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(role)}:{quote(password)}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def local_database_url(role: str, port: int = LOCAL_POSTGRES_PORT) -> str:
    """URL of the local PostgreSQL as one of the project's roles (or the admin)."""
    password = LOCAL_ADMIN_PASSWORD if role == LOCAL_ADMIN_USER else ROLE_PASSWORDS[role]
    return f"postgresql://{role}:{quote(password)}@127.0.0.1:{port}/{LOCAL_DATABASE}"


@dataclass(frozen=True)
class KafkaSecurity:
    """Transport security for Kafka clients; PLAINTEXT on loopback by default."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def client_kwargs(self) -> dict[str, object]:
        """Keyword arguments for aiokafka clients."""
        kwargs: dict[str, object] = {"security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            import ssl

            kwargs["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs


@dataclass(frozen=True)
class Settings:
    """Where the services are and how the pipeline is tuned."""

    kafka_bootstrap_servers: str = f"127.0.0.1:{LOCAL_KAFKA_PORT}"
    database_url: str = field(default_factory=lambda: local_database_url("selene_writer"), repr=False)
    database_owner_url: str = field(default_factory=lambda: local_database_url("selene_owner"), repr=False)
    database_reader_url: str = field(default_factory=lambda: local_database_url("selene_reader"), repr=False)
    database_operator_url: str = field(default_factory=lambda: local_database_url("selene_operator"), repr=False)
    database_admin_url: str | None = field(default_factory=lambda: local_database_url(LOCAL_ADMIN_USER), repr=False)
    topic_prefix: str = "selene."
    topic_partitions: int = 3
    replication_factor: int = 1
    consumer_group: str = "selene-ledger-writer"
    max_event_bytes: int = 65536
    batch_max_records: int = 2000
    # Group membership timing of the writer (aiokafka's defaults); fault drills shorten them.
    consumer_session_timeout_ms: int = 10000
    consumer_heartbeat_interval_ms: int = 3000
    consumer_max_poll_interval_ms: int = 300000
    # Static group membership (KIP-345): a writer restarted under the same id by its supervisor takes its
    # partitions back at once instead of after the session timeout. None: dynamic membership.
    consumer_instance_id: str | None = None
    # A writer paused inside a transaction (SIGSTOP, a frozen VM) must not hold its offset-row locks for
    # ever: PostgreSQL ends its session after this long idle in a transaction, and the new owner proceeds.
    writer_idle_in_transaction_timeout_ms: int = 30000
    # A batch that fails this many times in a row with the same failure its data may cause (not an outage:
    # those are retried without limit) is isolated (halved down to single events), so the event behind it
    # becomes a dead letter and the rest land (``LedgerWriter._process``). Enough attempts for a race with
    # another writer to be over.
    writer_max_batch_retries: int = 5
    # Processes that decode for replay (validation, canonical payload, content hash: replay's bottleneck);
    # 0 decodes in the replaying process, None (env ``auto``) one per core, at most 4 (none on one core).
    replay_decode_workers: int | None = None
    # Compression of what the publisher sends (none, gzip, snappy, lz4, zstd). Readers decode every codec
    # whatever this says; the default is measured in BENCHMARKS.md ("Publisher compression").
    kafka_compression: str = "lz4"
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)

    #: ``HOST:PORT`` of the metrics and health server of ``consume``, ``replay`` and ``rebuild``; None: off
    metrics_address: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``SELENE_*`` variables; anything unset keeps its local default.

        When only ``SELENE_DATABASE_URL`` is given, the other role URLs are derived from it (same server
        and database, the project's role names and local passwords) unless they are set too: allowed only
        for a server on this machine (loopback), and logged as a warning, since the local passwords guard
        nothing anywhere else. Raises ``SettingsError`` naming every variable that is wrong.
        """
        env = _read_environment(os.environ if environ is None else environ)
        base = cls()
        derived: dict[str, str | None] = {}
        if env.database_url is not None:
            db = env.database_url.get_secret_value()
            derived = {"database_url": db, "database_admin_url": None}
            missing = [
                (name, role)
                for name, role, value in (
                    ("SELENE_DATABASE_OWNER_URL", "selene_owner", env.database_owner_url),
                    ("SELENE_DATABASE_READER_URL", "selene_reader", env.database_reader_url),
                    ("SELENE_DATABASE_OPERATOR_URL", "selene_operator", env.database_operator_url),
                )
                if value is None
            ]
            if missing:
                names = ", ".join(name for name, _ in missing)
                host = urlsplit(db).hostname
                if not is_local_host(host):
                    raise SettingsError(
                        f"SELENE_DATABASE_URL: {names} unset, and deriving them from SELENE_DATABASE_URL would use "
                        f"the local development passwords on {host}, which is not this machine: set them too"
                    )
                log.warning(
                    "%s derived from SELENE_DATABASE_URL with the local development passwords (host %s)",
                    names,
                    host or "local socket",
                )
                for _, role in missing:
                    derived[f"database_{role.removeprefix('selene_')}_url"] = role_url(db, role, ROLE_PASSWORDS[role])
        for name in ("database_owner_url", "database_reader_url", "database_operator_url", "database_admin_url"):
            secret = getattr(env, name)
            if secret is not None:
                derived[name] = secret.get_secret_value()
        security = KafkaSecurity(
            protocol=env.kafka_security_protocol,
            sasl_mechanism=env.kafka_sasl_mechanism,
            sasl_username=env.kafka_sasl_username,
            sasl_password=env.kafka_sasl_password.get_secret_value() if env.kafka_sasl_password else None,
            ssl_cafile=env.kafka_ssl_cafile,
        )
        return replace(
            base,
            kafka_bootstrap_servers=env.kafka_bootstrap_servers,
            topic_prefix=env.topic_prefix,
            topic_partitions=env.topic_partitions,
            replication_factor=env.replication_factor,
            consumer_group=env.consumer_group,
            max_event_bytes=env.max_event_bytes,
            batch_max_records=env.batch_max_records,
            consumer_session_timeout_ms=env.consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms=env.consumer_heartbeat_interval_ms,
            consumer_instance_id=env.consumer_instance_id,
            writer_idle_in_transaction_timeout_ms=env.writer_idle_in_transaction_timeout_ms,
            writer_max_batch_retries=max(1, env.writer_max_batch_retries),
            consumer_max_poll_interval_ms=env.consumer_max_poll_interval_ms,
            replay_decode_workers=env.replay_decode_workers,
            kafka_compression=env.kafka_compression,
            kafka_security=security,
            metrics_address=env.metrics_address,
            **derived,  # type: ignore[arg-type]
        )


class SettingsError(ValueError):
    """A ``SELENE_*`` variable that cannot be used; the message names it (never a secret's value)."""


def is_local_host(host: str | None) -> bool:
    """True for loopback (or no host: a Unix socket on this machine)."""
    if not host or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _var(name: str, default: Any) -> Any:
    return Field(default, validation_alias=name)


class Environment(BaseSettings):
    """Every ``SELENE_*`` variable, parsed by pydantic-settings so that each error names its variable.

    The README's settings table lists each one (``tests/unit/test_settings.py`` holds it to that). A few are
    read where they act (noted), but are declared here too so that they are validated and documented once.
    """

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, populate_by_name=False)

    kafka_bootstrap_servers: str = _var("SELENE_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{LOCAL_KAFKA_PORT}")
    database_url: SecretStr | None = _var("SELENE_DATABASE_URL", None)
    database_owner_url: SecretStr | None = _var("SELENE_DATABASE_OWNER_URL", None)
    database_reader_url: SecretStr | None = _var("SELENE_DATABASE_READER_URL", None)
    database_operator_url: SecretStr | None = _var("SELENE_DATABASE_OPERATOR_URL", None)
    database_admin_url: SecretStr | None = _var("SELENE_DATABASE_ADMIN_URL", None)
    topic_prefix: str = _var("SELENE_TOPIC_PREFIX", "selene.")
    topic_partitions: PositiveInt = _var("SELENE_TOPIC_PARTITIONS", 3)
    replication_factor: PositiveInt = _var("SELENE_TOPIC_REPLICATION_FACTOR", 1)
    consumer_group: str = _var("SELENE_CONSUMER_GROUP", "selene-ledger-writer")
    max_event_bytes: PositiveInt = _var("SELENE_MAX_EVENT_BYTES", 65536)
    batch_max_records: PositiveInt = _var("SELENE_BATCH_MAX_RECORDS", 2000)
    consumer_session_timeout_ms: PositiveInt = _var("SELENE_CONSUMER_SESSION_TIMEOUT_MS", 10000)
    consumer_heartbeat_interval_ms: PositiveInt = _var("SELENE_CONSUMER_HEARTBEAT_INTERVAL_MS", 3000)
    consumer_max_poll_interval_ms: PositiveInt = _var("SELENE_CONSUMER_MAX_POLL_INTERVAL_MS", 300000)
    consumer_instance_id: str | None = _var("SELENE_CONSUMER_INSTANCE_ID", None)
    writer_idle_in_transaction_timeout_ms: NonNegativeInt = _var("SELENE_WRITER_IDLE_IN_TRANSACTION_TIMEOUT_MS", 30000)
    writer_max_batch_retries: int = _var("SELENE_WRITER_MAX_BATCH_RETRIES", 5)
    replay_decode_workers: NonNegativeInt | None = _var("SELENE_REPLAY_DECODE_WORKERS", None)
    kafka_compression: str = _var("SELENE_KAFKA_COMPRESSION", "lz4")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = _var(
        "SELENE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"
    )
    kafka_sasl_mechanism: str | None = _var("SELENE_KAFKA_SASL_MECHANISM", None)
    kafka_sasl_username: str | None = _var("SELENE_KAFKA_SASL_USERNAME", None)
    kafka_sasl_password: SecretStr | None = _var("SELENE_KAFKA_SASL_PASSWORD", None)
    kafka_ssl_cafile: str | None = _var("SELENE_KAFKA_SSL_CAFILE", None)
    metrics_address: str | None = _var("SELENE_METRICS_ADDRESS", None)
    #: read by the CLI (``--log-format`` wins)
    log_format: Literal["text", "json"] = _var("SELENE_LOG_FORMAT", "text")
    #: read by cli/loop.py
    event_loop: Literal["uvloop", "asyncio"] = _var("SELENE_EVENT_LOOP", "uvloop")
    #: read by consumers/verify.py: the HMAC key of ``verify --digest-out``
    digest_key: SecretStr | None = _var("SELENE_DIGEST_KEY", None)
    #: read by services/local.py: the checkout whose local services to use
    home: str | None = _var("SELENE_HOME", None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_MappingSource(settings_cls, _ENVIRON.get()),)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """An empty optional variable means "unset" (as ``VAR= command`` does in a shell)."""
        if isinstance(value, str) and not value.strip() and info.field_name in _OPTIONAL:
            return None
        return value

    @field_validator("replay_decode_workers", mode="before")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in ("", "auto") else value

    @field_validator("kafka_compression", mode="before")
    @classmethod
    def _codec_name(cls, value: Any) -> Any:
        return (value.strip().lower() or "none") if isinstance(value, str) else value

    @field_validator("event_loop", mode="before")
    @classmethod
    def _loop_name(cls, value: Any) -> Any:
        return (value.strip().lower() or "uvloop") if isinstance(value, str) else value

    @field_validator("kafka_compression")
    @classmethod
    def _codec(cls, value: str) -> str:
        if value not in KAFKA_CODECS:
            raise ValueError(f"expected one of {', '.join(KAFKA_CODECS)}")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_address(value)
        return value


_OPTIONAL = {name for name, f in Environment.model_fields.items() if f.default is None}
#: variables whose value an error message must not repeat
_SECRET = {f.validation_alias for f in Environment.model_fields.values() if f.annotation == SecretStr | None}
_ENVIRON: ContextVar[Mapping[str, str]] = ContextVar("selene_environ", default=os.environ)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (os.environ or a test's own)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._environ.items() if k.startswith("SELENE_")}


def _read_environment(environ: Mapping[str, str]) -> Environment:
    token = _ENVIRON.set(environ)
    try:
        return Environment()
    except ValidationError as exc:
        problems = []
        for e in exc.errors(include_url=False):
            name = str(e["loc"][0]) if e["loc"] else "?"
            shown = "" if name in _SECRET else f"={environ.get(name, '')!r}"
            problems.append(f"{name}{shown}: {e['msg']}")
        raise SettingsError("; ".join(problems)) from None
    finally:
        _ENVIRON.reset(token)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) of a server to listen on."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 (an empty host means every interface)


KAFKA_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
