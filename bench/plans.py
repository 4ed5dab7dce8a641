"""EXPLAIN ANALYZE of the gateway's own list queries, for the results file.

The SQL is not copied here: the gateway's repository builds each statement (it is handed a
stand-in connection that keeps the statement instead of running it), and SQLAlchemy's
asyncpg dialect compiles it to exactly the text and parameters the gateway sends. Each is
then explained twice on the seeded database:

- `custom`: planned for the actual parameter values, as the first executions of a
  prepared statement are;
- `generic`: the parameter-independent plan PostgreSQL may switch a prepared statement to
  after five executions (asyncpg prepares every statement, so a pooled connection that
  serves the same page shape over and over ends up on it if the planner judges it cheap
  enough). A bad generic plan shows up as a latency cliff after warmup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.jobs import repository


class _Captured(Exception):
    pass


class _StatementCatcher:
    """Stands in for an AsyncConnection: keeps the first statement and stops the caller."""

    statement: Any = None
    # No live connection behind it: app.database.fetch then goes through execute().
    sync_connection: Any = None

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        # The repository's statements are built once, with bound parameters: keep the values.
        self.statement = statement.params(args[0]) if args else statement
        raise _Captured


async def _list_statement(job_filter: repository.JobFilter, after: list[Any] | None) -> Any:
    catcher = _StatementCatcher()
    with contextlib.suppress(_Captured):
        await repository.list_jobs(
            cast(AsyncConnection, catcher),
            job_filter,
            sort_field="createdAt",
            descending=True,
            limit=20,
            after=after,
        )
    return catcher.statement


def _literal(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "NULL"}[value]
    if isinstance(value, int | float):
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


def _summary(plan: Sequence[str]) -> dict[str, Any]:
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    return {
        "top": plan[0].strip() if plan else "",
        "execution_ms": float(execution.split(":")[1].split()[0]) if execution else None,
        "plan": list(plan),
    }


async def explain_list_queries(
    engine: AsyncEngine, account_id: str, deep_after: list[Any] | None
) -> dict[str, Any]:
    """Custom and generic plans of each benchmarked GET shape, with their execution times."""
    shapes: dict[str, tuple[repository.JobFilter, list[Any] | None]] = {
        "list_default": (repository.JobFilter(account_id), None),
        "list_status_running": (repository.JobFilter(account_id, statuses=["running"]), None),
        "list_provider_akash": (repository.JobFilter(account_id, providers=["akash"]), None),
    }
    if deep_after is not None:
        shapes["list_deep_cursor"] = (repository.JobFilter(account_id), deep_after)
    report: dict[str, Any] = {}
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for name, (job_filter, after) in shapes.items():
            statement = await _list_statement(job_filter, after)
            # The expanded state renders IN lists as the driver receives them.
            compiled = statement.compile(dialect=engine.dialect).construct_expanded_state()
            assert compiled.positiontup is not None
            args = [compiled.parameters[key] for key in compiled.positiontup]
            explain = "EXPLAIN (ANALYZE, BUFFERS) " + compiled.statement
            # The second run of each is kept: the first one warms the cache.
            for _ in range(2):
                custom = [row[0] for row in await driver.fetch(explain, *args)]
            await driver.execute(f"PREPARE bench_plan AS {compiled.statement}")
            try:
                await driver.execute("SET plan_cache_mode = force_generic_plan")
                execute = f"EXECUTE bench_plan({', '.join(_literal(a) for a in args)})"
                for _ in range(2):
                    rows = await driver.fetch("EXPLAIN (ANALYZE, BUFFERS) " + execute)
                    generic = [row[0] for row in rows]
            finally:
                await driver.execute("RESET plan_cache_mode")
                await driver.execute("DEALLOCATE bench_plan")
            report[name] = {
                "sql": compiled.statement,
                "custom": _summary(custom),
                "generic": _summary(generic),
            }
        await connection.rollback()
    return report
