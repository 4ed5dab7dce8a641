"""The engine: runs beside the HTTP server in every gateway process, claims jobs that need
action, drives each in its own task, and keeps its claims alive with a lease.

Several processes share one database: a job is driven by the one engine holding its lease;
when a process dies its leases lapse and another engine takes its jobs over where they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.accounts import budgets, limits
from app.admission.providers import ProviderSet
from app.engine import actions, auto, repository, retry, steps
from app.jobs.lifecycle import JobStatus
from app.jobs.record import JobRecord
from app.observability import logs
from app.observability import metrics as observability_metrics
from app.outputs.store import ArtifactStore
from app.outputs.uploads import UploadLinks
from app.settings import Settings
from providers.types import FailureReason

logger = logging.getLogger(__name__)

# After an unexpected error a job's driver starts again after this pause, doubling to the cap.
RESTART_DELAY, RESTART_DELAY_MAX = 1.0, 60.0
# A quiet job is looked at less and less often, up to this (a provider's watch still wakes
# the driver the moment a workload ends, and a cancel request pokes it).
QUIET_POLL_MAX = 5.0


def default_engine_slots(settings: Settings) -> int | None:
    """The engine-slot cap of an account without its own (`account_limits` holds those, and
    the claim reads them in SQL); None: no cap beyond the fair share."""
    return limits.defaults(settings).max_engine_slots


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Engine:
    def __init__(
        self,
        db: AsyncEngine,
        providers: ProviderSet,
        settings: Settings,
        *,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        self.db = db
        self.providers = providers
        self.owner = new_owner_id()
        self.poll_interval = settings.engine_poll_interval
        self.lease_seconds = settings.engine_lease_seconds
        self.max_jobs = settings.engine_max_jobs
        self.settings = settings
        self.default_slots = default_engine_slots(settings)
        self.ctx = steps.Context(
            db,
            providers,
            self.owner,
            settings.metrics_interval,
            settings.log_max_bytes_per_job,
            submit_timeout=settings.engine_submit_timeout,
            progress_interval=settings.progress_event_interval,
            artifacts=artifacts,
            output_max_bytes=settings.output_max_bytes,
            upload_links=UploadLinks(db, settings.public_url) if settings.public_url else None,
        )
        # Renewals on a pool of their own: with hundreds of drivers waiting for the shared
        # pool (a large backlog), renewals queued behind them let leases lapse and other
        # engines take the jobs over while they are driven (bench/README.md, Scale-out).
        self.lease_db = database.create_engine(
            db.url.render_as_string(hide_password=False), pool_size=1
        )
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._pokes: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- outside signals -----------------------------------------------------------------------

    def wake(self) -> None:
        """A job was submitted here: claim it now rather than at the next poll."""
        self._wake.set()

    def poke(self, job_id: str) -> None:
        """A job changed here (a cancel request): its driver should look now."""
        event = self._pokes.get(job_id)
        if event is not None:
            event.set()
        else:
            self._wake.set()

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._supervise("claims", self._claim_loop)),
            asyncio.create_task(self._supervise("leases", self._lease_loop)),
            asyncio.create_task(self._supervise("budgets", self._budget_loop)),
        ]
        logger.info("engine %s started", self.owner)

    async def stop(self) -> None:
        """Stop driving jobs and hand them back at once; their workloads keep running and
        the next engine to claim them carries on."""
        held = list(self._drivers)
        drivers = list(self._drivers.values())
        for task in [*self._tasks, *drivers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *drivers, return_exceptions=True)
        try:
            async with database.transaction(self.db) as connection:
                await repository.let_go(connection, self.owner, held)
        except Exception:
            logger.exception("could not hand back %d jobs; their leases will lapse", len(held))
        await self.lease_db.dispose()
        logger.info("engine %s stopped", self.owner)

    @property
    def driving(self) -> int:
        return len(self._drivers)

    @property
    def alive(self) -> bool:
        """Whether the claim and lease loops run (readiness checks ask)."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    async def _supervise(self, name: str, loop: object) -> None:
        delay = RESTART_DELAY
        while True:
            began = time.monotonic()
            try:
                await loop()  # type: ignore[operator]
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                # After a long healthy run a new failure (the next database outage) starts
                # the backoff over, rather than waiting the last outage's longest delay.
                if time.monotonic() - began > RESTART_DELAY_MAX:
                    delay = RESTART_DELAY
                logger.exception("engine %s loop failed; restarting in %.0f s", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_DELAY_MAX)

    async def _claim_loop(self) -> None:
        while True:
            room = self.max_jobs - len(self._drivers)
            if room > 0:
                async with database.transaction(self.db) as connection:
                    claimed = await repository.claim(
                        connection,
                        self.owner,
                        limit=room,
                        lease_seconds=self.lease_seconds,
                        default_slots=self.default_slots,
                    )
                # A job this engine still drives comes back when its lease lapsed before the
                # renewal (a stalled process): the claim renewed it; a second driver would
                # store its log lines twice, since the fence only knows the engine.
                fresh = [row for row in claimed if row["id"] not in self._drivers]
                for row in fresh:
                    job_id = row["id"]
                    self._pokes[job_id] = asyncio.Event()
                    self._drivers[job_id] = asyncio.create_task(self._drive(job_id, row))
                if fresh:
                    observability_metrics.engine_driving(len(self._drivers))
                    continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            held = list(self._drivers)
            async with database.transaction(self.lease_db) as connection:
                taken = await repository.renew(
                    connection, self.owner, held, lease_seconds=self.lease_seconds
                )
            # A job whose driver let it go (finished) between `held` and the renewal is no
            # one's: only a job another engine took must stop being driven here.
            for job_id in taken:
                logger.warning("lost the lease on %s; another engine drives it now", job_id)
                task = self._drivers.get(job_id)
                if task is not None:
                    task.cancel()

    async def _budget_loop(self) -> None:
        """Every metrics interval, stop the jobs of budgets reached (one process at a time:
        the others find the enforcer's lock taken); a job this engine drives is stopped now,
        one another engine drives at its driver's next look."""
        while True:
            await asyncio.sleep(self.ctx.metrics_interval)
            async with database.transaction(self.db) as connection:
                stopping = await budgets.stop_over_budget(connection, self.settings)
            for job_id in stopping:
                self.poke(job_id)

    async def _drive(self, job_id: str, claimed: RowMapping) -> None:
        logs.bind_job(job_id)  # every line this task logs names its job
        delay = RESTART_DELAY
        first: RowMapping | None = claimed
        try:
            while True:
                began = time.monotonic()
                try:
                    # The row as claimed saves the first read; after an error, read afresh.
                    await self._drive_once(job_id, first)
                    return
                except steps.LeaseLost:
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    first = None
                    if time.monotonic() - began > RESTART_DELAY_MAX:
                        delay = RESTART_DELAY
                    logger.exception("driving %s failed; retrying in %.0f s", job_id, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RESTART_DELAY_MAX)
        finally:
            self._drivers.pop(job_id, None)
            self._pokes.pop(job_id, None)
            observability_metrics.engine_driving(len(self._drivers))
            # A job that ended may free a turn of its batch: claim the next one now.
            self._wake.set()

    async def _drive_once(self, job_id: str, claimed: RowMapping | None) -> None:
        next_sample = 0.0
        interval = self.poll_interval
        unavailable = 0  # status asked in a row without an answer
        first_look = True
        while True:
            row: RowMapping | None
            if first_look and claimed is not None:
                row = claimed
            else:
                async with database.reading(self.db) as connection:
                    row = await repository.read(connection, job_id)
            if row is None or row["engine_owner"] != self.owner:
                return
            if first_look:
                observability_metrics.job_claimed(row)
                first_look = False
            job = JobRecord.from_row(row)
            status = job.status
            provider = self.providers.get(job.provider)
            if status.is_terminal:
                if job.batch_id is not None:
                    # Its turn is over: the batch's next job may start before this release ends.
                    self._wake.set()
                if await actions.release(self.ctx, job, provider):
                    return
                await self._pause(job_id, 5.0)
                continue
            if auto.needs_placing(job):
                retry_in = await auto.place(self.ctx, job)
                if retry_in:
                    await self._pause(job_id, retry_in)
                continue
            if provider is None:
                await steps.fail(
                    self.ctx,
                    job_id,
                    FailureReason.REJECTED,
                    f"This gateway has no adapter for provider {job.provider!r}.",
                )
                continue
            if status is JobStatus.PENDING:
                retry_in = await actions.start(self.ctx, job, provider)
                if retry_in:
                    await self._pause(job_id, retry_in)
                continue
            if status is JobStatus.CANCELLING:
                if not await actions.stop(self.ctx, job, provider):
                    await self._pause(job_id, 5.0)
                continue
            sample = time.monotonic() >= next_sample
            if sample:
                next_sample = time.monotonic() + self.ctx.metrics_interval
            progress = await actions.follow(self.ctx, job, provider, sample=sample)
            if progress is steps.Progress.ENDED:
                continue
            if progress is steps.Progress.UNAVAILABLE:
                # Not the provider's watch: it may answer at once while its network is down.
                unavailable += 1
                await self._pause(job_id, max(retry.backoff(unavailable), self.poll_interval))
                continue
            unavailable = 0
            if progress is steps.Progress.CHANGED:
                interval = self.poll_interval
            else:
                interval = min(interval * 1.5, max(QUIET_POLL_MAX, self.poll_interval))
            await self._watch(job_id, provider, job.handle, interval)

    async def _pause(self, job_id: str, seconds: float) -> None:
        event = self._pokes.get(job_id)
        if event is None:
            await asyncio.sleep(seconds)
            return
        event.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await event.wait()

    async def _watch(self, job_id: str, provider: object, handle: object, seconds: float) -> None:
        """Until the workload may have changed (the provider's watch) or the job was poked."""
        event = self._pokes.get(job_id)
        watch = asyncio.ensure_future(provider.watch(handle, seconds))  # type: ignore[attr-defined]
        waiters: set[asyncio.Future[object]] = {watch}
        if event is not None:
            event.clear()
            waiters.add(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
