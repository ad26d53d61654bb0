"""docs/WIRE_FORMAT.md's Java example, run as written: the code block is taken from the document itself
(not a copy), compiled against the kafka-clients jar the local broker runs on, and run against Kafka; the
writer then appends the event it sent to ``os_core.audit_events``."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from contracts.settings import Settings
from services import local
from tests.e2e.helpers import drain
from tests.fixtures.java import JVM_OPTIONS, RUN_TIMEOUT, _compiler, _jars

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "WIRE_FORMAT.md"
CLASS = "PublishAuditEvent"


def documented_example() -> str:
    """The ```java block of the document's Java example section."""
    text = DOC.read_text()
    section = text[text.index("## Example: publishing from Java") :]
    match = re.search(r"```java\n(.*?)```", section, re.DOTALL)
    assert match, "no ```java block in the example section of docs/WIRE_FORMAT.md"
    return match.group(1)


def test_the_example_is_the_class_it_says_and_uses_only_kafka_clients() -> None:
    source = documented_example()
    assert f"public final class {CLASS} " in source
    imports = re.findall(r"^import (?:static )?([\w.]+)", source, re.MULTILINE)
    assert imports and all(
        i.startswith(("java.", "org.apache.kafka.clients.", "org.apache.kafka.common.")) for i in imports
    )


@pytest.fixture(scope="module")
def classpath(tmp_path_factory: pytest.TempPathFactory, migrated: Settings) -> str:
    if migrated.kafka_security.protocol != "PLAINTEXT":
        pytest.skip("the example connects in PLAINTEXT; these services need TLS or SASL")
    jars = _jars(local.state_dir() / "kafka" / "lib")
    cp = ":".join(str(j) for j in jars)
    out = tmp_path_factory.mktemp("wire-example")
    source = out / f"{CLASS}.java"
    source.write_text(documented_example())
    result = subprocess.run(
        [*_compiler(), "-encoding", "UTF-8", "-cp", cp, "-d", str(out), str(source)],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, f"the documented example does not compile:\n{result.stdout}{result.stderr}"
    return f"{out}:{cp}"


async def test_documented_java_example_lands_in_the_audit_ledger(
    classpath: str, topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant, correlation = f"wire-{run_id}", f"corr-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        "java", *JVM_OPTIONS, "-cp", classpath, CLASS,
        topics.kafka_bootstrap_servers, topics.topic_prefix, tenant, correlation,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    assert proc.returncode == 0, err.decode()[-4000:]
    (line,) = [x for x in out.decode().splitlines() if x.startswith("sent ")]
    _, event_id, topic, partition, offset = line.split()
    assert topic == f"{topics.topic_prefix}os_core.audit_events"

    stats = await drain(topics)
    assert (stats.result.appended, stats.result.dead_total) == (1, 0)
    row = await operator_db.fetchrow(
        "SELECT event_uuid::text AS id, engine_id, event_type, correlation_id, source_partition, source_offset "
        "FROM os_core.audit_events WHERE tenant_id = $1",
        tenant,
    )
    assert row is not None
    assert dict(row) == {
        "id": event_id,
        "engine_id": "PH1.JAVA",
        "event_type": "AUDIT_RECORDED",
        "correlation_id": correlation,
        "source_partition": int(partition),
        "source_offset": int(offset),
    }
