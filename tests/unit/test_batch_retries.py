"""Which failed attempts at a batch count towards the retry limit (issue 13 item 5): only failures the batch's
data may cause; an outage is retried without limit, however long it lasts."""

from __future__ import annotations

import asyncpg
import pytest

from consumers.db import is_retriable
from consumers.pipeline import DATA_RETRIABLE, retry_signature
from consumers.status import retry_reason
from contracts.reasons import ReasonCode, RetriableError
from contracts.settings import Settings


@pytest.mark.parametrize(
    "exc",
    [
        RetriableError("PostgreSQL is down", ReasonCode.DATABASE_UNAVAILABLE),
        RetriableError("the broker is down", ReasonCode.BROKER_UNAVAILABLE),
        RetriableError("fenced", ReasonCode.WRITER_FENCED),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
)
def test_outages_never_count_towards_the_limit(exc: BaseException) -> None:
    assert retry_signature(exc) is None


def test_data_failures_count_by_reason_code_whatever_the_detail() -> None:
    one = RetriableError(
        "1 rows of audit_events were appended concurrently by another writer", ReasonCode.CONCURRENT_APPEND
    )
    three = RetriableError(
        "3 rows of audit_events were appended concurrently by another writer", ReasonCode.CONCURRENT_APPEND
    )
    assert retry_signature(one) == retry_signature(three) == "CONCURRENT_APPEND"
    assert {ReasonCode(retry_signature(RetriableError("x", code)) or "") for code in DATA_RETRIABLE} == DATA_RETRIABLE


def test_retry_reason_names_the_cause_briefly() -> None:
    assert retry_reason(RetriableError("x", ReasonCode.CONCURRENT_APPEND)) == "CONCURRENT_APPEND"
    assert retry_reason(asyncpg.exceptions.AdminShutdownError("bye")) == "SQLSTATE 57P01"
    assert retry_reason(ConnectionRefusedError()) == "ConnectionRefusedError"


def test_the_limit_is_a_setting_of_at_least_one() -> None:
    assert Settings.from_env({}).writer_max_batch_retries == 5
    assert Settings.from_env({"SELENE_WRITER_MAX_BATCH_RETRIES": "2"}).writer_max_batch_retries == 2
    assert Settings.from_env({"SELENE_WRITER_MAX_BATCH_RETRIES": "0"}).writer_max_batch_retries == 1


def test_a_connection_left_mid_operation_by_a_dropped_server_is_an_outage() -> None:
    """After PostgreSQL was killed and restarted under the writer, a pooled connection raised asyncpg's
    InternalClientError ("cannot switch to state 15; another operation (2) is in progress") and the writer
    stopped (tests/faults/test_faults.py::test_postgres_killed_mid_batch_and_restarted, once, under load)."""
    exc = asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
    assert is_retriable(exc)
    assert retry_signature(exc) is None
