"""The benchmark harness of issue 7: every way of getting ledger events into PostgreSQL, measured in one run
on the local services (``python -m bench run``), plus the writer's growth (``python -m bench growth``)."""
