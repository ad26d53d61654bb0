"""Settings: every error names its variable, secrets stay secret, derived role URLs only on this machine, and
the README's table lists every variable."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from contracts.settings import Environment, Settings, SettingsError, _read_environment

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "producers", "consumers", "cli", "services", "sql")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SELENE_TOPIC_PARTITIONS", "three"),
        ("SELENE_BATCH_MAX_RECORDS", "0"),
        ("SELENE_KAFKA_COMPRESSION", "brotli"),
        ("SELENE_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("SELENE_METRICS_ADDRESS", "localhost"),
        ("SELENE_LOG_FORMAT", "xml"),
        ("SELENE_REPLAY_DECODE_WORKERS", "-1"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(f"{name}={value!r}: "), str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SELENE_TOPIC_PARTITIONS": "three", "SELENE_MAX_EVENT_BYTES": "lots"})
    assert "SELENE_TOPIC_PARTITIONS" in str(caught.value) and "SELENE_MAX_EVENT_BYTES" in str(caught.value)


def test_defaults_and_existing_parsing_are_kept() -> None:
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env(
        {
            "SELENE_REPLAY_DECODE_WORKERS": "auto",
            "SELENE_KAFKA_COMPRESSION": " ZSTD ",
            "SELENE_CONSUMER_INSTANCE_ID": "",
            "SELENE_WRITER_MAX_BATCH_RETRIES": "0",
            "SELENE_TOPIC_PARTITIONS": "6",
            "SELENE_METRICS_ADDRESS": "127.0.0.1:9464",
        }
    )
    assert (s.replay_decode_workers, s.kafka_compression, s.consumer_instance_id) == (None, "zstd", None)
    assert (s.writer_max_batch_retries, s.topic_partitions, s.metrics_address) == (1, 6, "127.0.0.1:9464")
    assert Settings.from_env({"SELENE_REPLAY_DECODE_WORKERS": "2"}).replay_decode_workers == 2


def test_a_secret_is_never_repeated_in_an_error_or_a_repr() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SELENE_KAFKA_SASL_PASSWORD": "hunter2", "SELENE_TOPIC_PARTITIONS": "x"})
    assert "hunter2" not in str(caught.value)
    url = "postgresql://selene_writer:hunter2@127.0.0.1:5432/selene"
    env = {
        "SELENE_DATABASE_URL": url,
        "SELENE_DATABASE_OWNER_URL": url,
        "SELENE_DATABASE_READER_URL": url,
        "SELENE_DATABASE_OPERATOR_URL": url,
        "SELENE_KAFKA_SASL_PASSWORD": "hunter2",
        "SELENE_DIGEST_KEY": "hunter2",
    }
    assert "hunter2" not in repr(Settings.from_env(env))
    assert "hunter2" not in repr(_read_environment(env))


def test_role_urls_derived_with_local_passwords_only_on_this_machine(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="selene.settings"):
        s = Settings.from_env({"SELENE_DATABASE_URL": "postgresql://selene_writer:pw@127.0.0.1:15432/mine"})
    assert s.database_reader_url == "postgresql://selene_reader:selene_reader_local@127.0.0.1:15432/mine"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "local development passwords" in warning and "SELENE_DATABASE_OPERATOR_URL" in warning

    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SELENE_DATABASE_URL": "postgresql://selene_writer:pw@db.example:5432/selene"})
    assert "SELENE_DATABASE_OWNER_URL" in str(caught.value) and "db.example" in str(caught.value)
    assert "pw@" not in str(caught.value)

    caplog.clear()
    explicit = {
        "SELENE_DATABASE_URL": "postgresql://w:a@db.example/selene",
        "SELENE_DATABASE_OWNER_URL": "postgresql://o:b@db.example/selene",
        "SELENE_DATABASE_READER_URL": "postgresql://r:c@db.example/selene",
        "SELENE_DATABASE_OPERATOR_URL": "postgresql://p:d@db.example/selene",
    }
    with caplog.at_level(logging.WARNING, logger="selene.settings"):
        s = Settings.from_env(explicit)
    assert s.database_operator_url == explicit["SELENE_DATABASE_OPERATOR_URL"] and caplog.records == []


def _readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("| variable | meaning (default) |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1])
    return set(re.findall(r"`(SELENE_[A-Z0-9_]+)`", "".join(rows)))


def test_readme_settings_table_lists_every_setting() -> None:
    declared = {str(f.validation_alias) for f in Environment.model_fields.values()}
    assert declared <= _readme_variables(), sorted(declared - _readme_variables())


def test_every_variable_the_code_reads_is_a_declared_setting() -> None:
    """A variable read somewhere in the packages but not declared in ``Environment`` would escape both the
    validation and the README table."""
    declared = {str(f.validation_alias) for f in Environment.model_fields.values()}
    read: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            read |= set(
                re.findall(
                    r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["'](SELENE_[A-Z0-9_]+)""", path.read_text()
                )
            )
    assert read, "the pattern found no variable at all: it is broken"
    assert read <= declared, sorted(read - declared)
