"""docker-compose.yml and the Dockerfile say what the README says they do.

The expected values are written out here on purpose: changing the stack (an image tag, a port, a
dependency) must be a visible change in this test too, and then in the README.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from contracts.settings import (
    LOCAL_ADMIN_PASSWORD,
    LOCAL_KAFKA_PORT,
    LOCAL_POSTGRES_PORT,
    ROLE_PASSWORDS,
    Settings,
)

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_SERVICES = {"kafka", "postgres", "migrate", "writer", "replay"}
EXPECTED_IMAGES = {
    "kafka": "apache/kafka:4.1.1",
    "postgres": "postgres:15",
    "migrate": "selene-ledger:local",
    "writer": "selene-ledger:local",
    "replay": "selene-ledger:local",
}
EXPECTED_PORTS = {
    "kafka": ["127.0.0.1:19092:19092"],
    "postgres": ["127.0.0.1:15432:5432"],
}
EXPECTED_PROFILES = {"replay": ["replay"]}
EXPECTED_DEPENDS_ON = {
    "kafka": {},
    "postgres": {},
    "migrate": {"postgres": "service_healthy"},
    "writer": {"migrate": "service_completed_successfully", "kafka": "service_healthy"},
    "replay": {"migrate": "service_completed_successfully", "kafka": "service_healthy"},
}
EXPECTED_COMMANDS = {
    "writer": ["consume"],
    "replay": ["replay", "--verify"],
}
APP_SERVICES = ("migrate", "writer", "replay")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open() as f:
        document: dict[str, Any] = yaml.safe_load(f)
    return document


@pytest.fixture(scope="module")
def stack(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose file's services by name."""
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_services_are_the_documented_ones(stack: dict[str, dict[str, Any]]) -> None:
    assert set(stack) == EXPECTED_SERVICES


def test_images(stack: dict[str, dict[str, Any]]) -> None:
    assert {name: svc.get("image") for name, svc in stack.items()} == EXPECTED_IMAGES
    for name in APP_SERVICES:
        assert stack[name]["build"] == ".", name


def test_published_ports_are_the_local_launchers(stack: dict[str, dict[str, Any]]) -> None:
    published = {name: svc["ports"] for name, svc in stack.items() if "ports" in svc}
    assert published == EXPECTED_PORTS
    # Host tools use the same addresses whether the stack or services.local runs them.
    assert published["kafka"][0].split(":")[1] == str(LOCAL_KAFKA_PORT)
    assert published["postgres"][0].split(":")[1] == str(LOCAL_POSTGRES_PORT)


def test_profiles(stack: dict[str, dict[str, Any]]) -> None:
    profiles = {name: svc["profiles"] for name, svc in stack.items() if "profiles" in svc}
    assert profiles == EXPECTED_PROFILES


def test_depends_on(stack: dict[str, dict[str, Any]]) -> None:
    actual = {
        name: {dep: spec["condition"] for dep, spec in svc.get("depends_on", {}).items()} for name, svc in stack.items()
    }
    assert actual == EXPECTED_DEPENDS_ON


def test_commands(stack: dict[str, dict[str, Any]]) -> None:
    assert {name: stack[name]["command"] for name in EXPECTED_COMMANDS} == EXPECTED_COMMANDS
    one_shot = " ".join(stack["migrate"]["entrypoint"])
    assert re.search(r"python -m services\.provision && exec selene-ledger migrate", one_shot)
    assert stack["migrate"]["restart"] == "no"


def test_healthchecks(stack: dict[str, dict[str, Any]]) -> None:
    assert "pg_isready" in " ".join(stack["postgres"]["healthcheck"]["test"])
    assert "--bootstrap-server localhost:9092" in " ".join(stack["kafka"]["healthcheck"]["test"])


def test_kafka_is_single_node_kraft_with_a_host_listener(stack: dict[str, dict[str, Any]]) -> None:
    env = stack["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://kafka:9092,HOST://localhost:{LOCAL_KAFKA_PORT}"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_NUM_PARTITIONS"] == "3"


def test_app_environment_matches_contracts_settings(stack: dict[str, dict[str, Any]]) -> None:
    """Every SELENE_* name is one Settings reads, and the URLs carry the provisioned roles."""
    settings_source = (ROOT / "contracts" / "settings.py").read_text()
    known = set(re.findall(r'"(SELENE_[A-Z_]+)"', settings_source))
    assert stack["postgres"]["environment"]["POSTGRES_PASSWORD"] == LOCAL_ADMIN_PASSWORD
    for name in APP_SERVICES:
        env = stack[name]["environment"]
        assert set(env) <= known, name
        settings = Settings.from_env(env)
        assert settings.kafka_bootstrap_servers == "kafka:9092"
        for url, role in (
            (settings.database_url, "selene_writer"),
            (settings.database_owner_url, "selene_owner"),
            (settings.database_reader_url, "selene_reader"),
            (settings.database_operator_url, "selene_operator"),
        ):
            parts = urlsplit(url)
            assert (parts.username, parts.password) == (role, ROLE_PASSWORDS[role]), name
            assert (parts.hostname, parts.port, parts.path) == ("postgres", 5432, "/selene"), name
    admin = urlsplit(stack["migrate"]["environment"]["SELENE_DATABASE_ADMIN_URL"])
    assert (admin.username, admin.password, admin.path) == ("postgres", LOCAL_ADMIN_PASSWORD, "/selene")


def test_dockerfile_runs_the_cli_on_python_311_slim() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["selene-ledger"\]$', dockerfile, re.MULTILINE)
    # The tested versions (constraints.txt), runtime dependencies only.
    assert re.search(r"^COPY pyproject\.toml constraints\.txt \./$", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN pip install -c constraints\.txt \. ", dockerfile, re.MULTILINE)
