"""``selene-ledger services up|down|status|env|reset``: the local Kafka and PostgreSQL from the shell.

A thin layer over services.local, so the fixtures, ./run and a developer all drive the same code.
"""

from __future__ import annotations

import argparse
import sys

from services import local
from services.kafka_node import KafkaNodeError
from services.postgres_node import PostgresNodeError

_NOT_RUNNING = 3  # the LSB/pg_ctl convention for `status` when a service is down


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``services`` command and its actions to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "services",
        help="start, stop and inspect the local Kafka and PostgreSQL",
        description=(
            "Run Kafka and PostgreSQL locally as plain processes (state in .selene/). A service whose "
            "address is set in the environment (SELENE_KAFKA_BOOTSTRAP_SERVERS, SELENE_DATABASE_URL) "
            "is external and left alone."
        ),
    )
    actions = parser.add_subparsers(dest="services_action", required=True, metavar="ACTION")
    actions.add_parser("up", help="start what is not running, provision the database (idempotent)")
    down = actions.add_parser("down", help="stop the services; data stays")
    down.add_argument("service", nargs="?", choices=local.SERVICES, help="stop only this one")
    actions.add_parser("status", help=f"show what runs where; exit {_NOT_RUNNING} if something is down")
    actions.add_parser("env", help="""print export lines: eval "$(selene-ledger services env)\"""")
    actions.add_parser("reset", help="stop the services and delete their data")


def _shell_quote(value: str) -> str:
    """Always single-quoted, so the output reads the same whatever the value holds."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _print(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    """Carry out ``args.services_action``; returns the process exit code."""
    action: str = args.services_action
    try:
        if action == "up":
            local.up(progress=_print)
            for line in local.status():
                _print(line)
        elif action == "down":
            local.down(services=(args.service,) if args.service else local.SERVICES, progress=_print)
        elif action == "status":
            for line in local.status():
                _print(line)
            return 0 if local.is_up() else _NOT_RUNNING
        elif action == "env":
            for name, value in local.env().items():
                _print(f"export {name}={_shell_quote(value)}")
        elif action == "reset":
            local.reset(progress=_print)
        else:  # pragma: no cover - argparse only lets the choices above through
            raise ValueError(action)
    except (KafkaNodeError, PostgresNodeError) as e:
        print(f"selene-ledger services {action}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # `python -m cli.services_cmd up` works before cli/main.py wires it in
    _parser = argparse.ArgumentParser(prog="selene-ledger")
    _sub = _parser.add_subparsers(dest="command", required=True)
    register(_sub)
    sys.exit(run(_parser.parse_args()))
