"""docker-compose.yml and the Dockerfile say what the README says they do.

The expected values are written out here on purpose: changing the stack (an image tag, a port, a
dependency) must be a visible change in this test too, and then in the README.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import yaml

from cli.main import HANDLERS, build_parser
from contracts.settings import (
    LOCAL_ADMIN_PASSWORD,
    LOCAL_KAFKA_PORT,
    LOCAL_POSTGRES_PORT,
    ROLE_PASSWORDS,
    Settings,
)
from tests.fixtures.services import KAFKA_IMAGE

ROOT = Path(__file__).resolve().parents[2]
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}

EXPECTED_SERVICES = {"kafka", "postgres", "migrate", "topics", "writer", "replay"}
EXPECTED_IMAGES = {
    "kafka": "apache/kafka:4.4.0",
    "postgres": "postgres:15",
    "migrate": "selene-ledger:local",
    "topics": "selene-ledger:local",
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
    # The writer starts once the schema is current and the topics exist (the broker auto-creates none).
    "topics": {"kafka": "service_healthy"},
    "writer": {
        "migrate": "service_completed_successfully",
        "topics": "service_completed_successfully",
        "kafka": "service_healthy",
    },
    "replay": {
        "migrate": "service_completed_successfully",
        "topics": "service_completed_successfully",
        "kafka": "service_healthy",
    },
}
EXPECTED_COMMANDS = {
    "topics": ["topics", "ensure"],
    "writer": ["consume", "--metrics", "0.0.0.0:9464"],
    "replay": ["replay", "--verify"],
}
APP_SERVICES = ("migrate", "topics", "writer", "replay")
ONE_SHOTS = ("migrate", "topics")


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
    for name in ONE_SHOTS:
        assert stack[name]["restart"] == "no", name
    assert stack["writer"]["restart"] == "unless-stopped"


def _cli_invocations(stack: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Each app service's selene-ledger arguments: its ``command`` (the image's entrypoint is the CLI), or
    what its shell entrypoint passes to ``selene-ledger``."""
    found: dict[str, list[str]] = {}
    for name in APP_SERVICES:
        svc = stack[name]
        if "entrypoint" in svc:
            script = " ".join(svc["entrypoint"])
            match = re.search(r"selene-ledger ([^&|;]+)", script)
            assert match, f"{name}: the entrypoint runs no selene-ledger command"
            found[name] = shlex.split(match.group(1))
        else:
            found[name] = list(svc["command"])
    return found


def test_every_service_command_is_a_real_cli_command(stack: dict[str, dict[str, Any]]) -> None:
    """argparse of the real CLI accepts each command, and a handler exists for it: a renamed subcommand or
    option fails here, not in a container that restarts forever."""
    parser = build_parser()
    invocations = _cli_invocations(stack)
    assert set(invocations) == set(APP_SERVICES)
    for name, argv in invocations.items():
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{name}: `selene-ledger {' '.join(argv)}` is refused by the CLI (exit {exc.code})")
        assert args.command in HANDLERS, name
    with pytest.raises(SystemExit):  # the check can fail: argparse refuses what the CLI does not have
        parser.parse_args(["consume", "--no-such-option"])


def test_healthchecks(stack: dict[str, dict[str, Any]]) -> None:
    assert "pg_isready" in " ".join(stack["postgres"]["healthcheck"]["test"])
    assert "--bootstrap-server localhost:9092" in " ".join(stack["kafka"]["healthcheck"]["test"])
    # The writer's readiness, asked on the address its command serves metrics on, with python (no curl).
    test = stack["writer"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    metrics = stack["writer"]["command"][stack["writer"]["command"].index("--metrics") + 1]
    port = metrics.rsplit(":", 1)[1]
    assert f"urllib.request.urlopen('http://127.0.0.1:{port}/health/ready'" in test[3]
    compile(test[3], "healthcheck", "exec")  # python code, not shell
    assert "curl" not in (ROOT / "Dockerfile").read_text()


def test_kafka_is_the_version_the_local_launcher_and_ci_run(stack: dict[str, dict[str, Any]]) -> None:
    pom = ElementTree.parse(ROOT / "services" / "kafka" / "pom.xml")
    version = pom.getroot().findtext("m:properties/m:kafka.version", namespaces=POM_NS)
    assert version
    assert stack["kafka"]["image"] == f"apache/kafka:{version}"
    assert stack["kafka"]["image"] == KAFKA_IMAGE  # the tests' containers, where a Docker engine answers


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
