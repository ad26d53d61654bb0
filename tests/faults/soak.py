"""The long fault drill: ``python -m tests.faults.soak --seconds 600 [--events N]``.

kill -9 of the writer every 1-3 s under a steady load for the given time, then a drain and the checker:
lost, duplicated, unexpected, order inversions, recovery times, and live == replay == rebuild. Runs on the
local services (started if needed) in a database of its own (``selene_soak``). Exits 1 on any loss,
duplicate or inversion.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from consumers.db import connect
from contracts.settings import Settings
from services import local
from services.provision import provision
from sql.migrate import migrate
from tests.faults.test_faults import kill_storm

DATABASE = "selene_soak"


def _with_database(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{DATABASE}", p.query, p.fragment))


async def main(seconds: float, events: int) -> int:
    env = local.up()
    env = {k: _with_database(v) if k.startswith("SELENE_DATABASE") else v for k, v in env.items()}
    await provision(env["SELENE_DATABASE_ADMIN_URL"], DATABASE)
    settings = Settings.from_env(env)
    await migrate(settings.database_owner_url)
    run_id = uuid.uuid4().hex[:10]
    from dataclasses import replace

    settings = replace(settings, topic_prefix=f"soak{run_id}.", consumer_group=f"soak-{run_id}")
    operator = await connect(settings.database_operator_url)
    try:
        with tempfile.TemporaryDirectory() as logs:
            report, kills = await kill_storm(settings, run_id, seconds, events, Path(logs), operator)
    finally:
        await operator.close()
    print(f"soak {seconds:.0f}s: {kills} kills of the writer; {report.summary()}")
    print("live == replay == rebuild: yes")  # kill_storm asserts it for every tenant
    return 0 if report.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--events", type=int, default=None, help="default: 300 per second of soak")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.events or int(args.seconds * 300))))
