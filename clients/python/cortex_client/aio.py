"""`AsyncClient`: the gateway's API from asyncio code, on an `httpx.AsyncClient`."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource

from cortex_client import _core, calls, downloads, errors
from cortex_client._core import Page
from cortex_client.models import (
    Account,
    AccountEvent,
    Batch,
    BatchSubmitted,
    BatchSummary,
    Delivery,
    Endpoint,
    EndpointWithSecret,
    Job,
    JobEventEntry,
    JobSpec,
    JobSummary,
    LogEntry,
    Metrics,
    Port,
    Provider,
    QuoteComparison,
    StreamToken,
    Template,
    Volume,
)

T = TypeVar("T")


class AsyncClient:
    """A gateway at `url` (`http://host:8000`, with or without `/api/plugin-core`).

    Answers are the models of `cortex_client.models`; error answers raise the `ApiError` subclass
    of their code. 429 and 503 are retried after `Retry-After` (`max_retries` times, waits of
    at most `max_retry_wait` s). Followed streams resume after a lost connection for up to
    `reconnect_for` s. Use it as an async context manager, or call `aclose()`."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        reconnect_for: float = 300.0,
        stream_read_timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.url = _core.api_base(url)
        self.retry = _core.RetryPolicy(max_retries=max_retries, max_wait=max_retry_wait)
        self.reconnect_for = reconnect_for
        self._stream_timeout = httpx.Timeout(timeout, read=stream_read_timeout)
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=_core.headers(api_key), timeout=timeout, transport=transport
        )
        self.jobs = Jobs(self)
        self.webhooks = Webhooks(self)
        self.providers = Providers(self)
        self.templates = Templates(self)
        self.batches = Batches(self)
        self.account = Accounts(self)

    async def send(self, call: _core.Call[T]) -> T:
        """Send one call, retrying 429/503 as the retry policy says."""
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.body,
                    headers=call.headers,
                )
            except httpx.TransportError as exc:
                raise _core.connection_failed(exc, self.url) from exc
            delay = self.retry.delay(response, attempt)
            if delay is None:
                return call.read(response)
            attempt += 1
            await asyncio.sleep(delay)

    async def iterate(self, call: _core.Call[Page[T]]) -> AsyncIterator[T]:
        """Every item of a listing, page after page."""
        next_call: _core.Call[Page[T]] | None = call
        while next_call is not None:
            page = await self.send(next_call)
            for item in page.items:
                yield item
            next_call = next_call.next_page(page)

    async def follow(
        self,
        call: _core.StreamCall[T],
        *,
        last_event_id: str | None = None,
    ) -> AsyncIterator[T]:
        """The items of a Server-Sent Events stream until its `end` event, reconnecting with
        `Last-Event-ID` whenever the connection is lost."""
        state = _core.Resume(call, last_event_id, self.reconnect_for, self.url)
        while True:
            try:
                async with self._http.stream(
                    "GET",
                    call.path,
                    params=state.params(),
                    headers=state.headers(),
                    timeout=self._stream_timeout,
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        await asyncio.sleep(state.refused(response))
                        continue
                    state.connected()
                    async for event in EventSource(response).aiter_sse():
                        item = state.receive(event)
                        if item is _core.END:
                            return
                        if item is not None:
                            yield item
                wait = state.dropped(ConnectionError("the stream closed before its end"))
            except httpx.TransportError as exc:
                wait = state.dropped(exc)
            await asyncio.sleep(wait)

    async def download(self, path: str, dest_dir: Path) -> builtins.list[Path]:
        """The output answered at `path`, saved into `dest_dir` (cortex_client.downloads)."""
        try:
            async with self._http.stream("GET", path, timeout=self._stream_timeout) as response:
                if not response.is_success:
                    await response.aread()
                    raise errors.from_response(response)
                with downloads.OutputSpool(dest_dir) as spool:
                    async for chunk in response.aiter_bytes():
                        spool.write(chunk)
                    return spool.save(response)
        except httpx.TransportError as exc:
            raise _core.connection_failed(exc, self.url) from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Jobs:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def submit(
        self,
        spec: JobSpec | Mapping[str, Any] | None = None,
        *,
        provider: str | None = None,
        image: str | None = None,
        cpu: int | None = None,
        memory: str | None = None,
        storage: str | None = None,
        duration: int | None = None,
        env: Mapping[str, str] | None = None,
        ports: Iterable[Port | Mapping[str, Any]] | None = None,
        volumes: Iterable[Volume | Mapping[str, Any]] | None = None,
        command: Iterable[str] | None = None,
        args: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Job:
        """Submit a job: a `JobSpec`, a mapping in the API's camelCase, and/or keywords
        (snake_case; other fields the gateway accepts pass through `fields`). A retry of the
        submission carries the same `Idempotency-Key` (yours, or one made for the call)."""
        payload = calls.body(
            spec,
            dict(
                provider=provider,
                image=image,
                cpu=cpu,
                memory=memory,
                storage=storage,
                duration=duration,
                env=env,
                ports=None if ports is None else list(ports),
                volumes=None if volumes is None else list(volumes),
                command=None if command is None else list(command),
                args=None if args is None else list(args),
                **fields,
            ),
        )
        return await self._client.send(calls.submit_job(payload, idempotency_key))

    async def get(self, job_id: str) -> Job:
        return await self._client.send(calls.get_job(job_id))

    async def list(
        self,
        *,
        status: str | Iterable[str] | None = None,
        provider: str | Iterable[str] | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        page: int | None = None,
        cursor: str | None = None,
        batch_id: str | None = None,
    ) -> Page[JobSummary]:
        """One page of jobs, newest first unless `sort` says otherwise."""
        return await self._client.send(
            calls.list_jobs(
                status=status,
                provider=provider,
                from_=from_,
                to=to,
                sort=sort,
                limit=limit,
                page=page,
                cursor=cursor,
                batch_id=batch_id,
            )
        )

    def iterate(
        self,
        *,
        status: str | Iterable[str] | None = None,
        provider: str | Iterable[str] | None = None,
        from_: datetime | str | None = None,
        to: datetime | str | None = None,
        sort: str | None = None,
        batch_id: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[JobSummary]:
        """Every matching job, following the listing's cursors."""
        call = calls.list_jobs(
            status=status,
            provider=provider,
            from_=from_,
            to=to,
            sort=sort,
            limit=page_size,
            batch_id=batch_id,
        )
        return self._client.iterate(call)

    async def cancel(self, job_id: str) -> Job:
        return await self._client.send(calls.cancel_job(job_id))

    async def logs(
        self, job_id: str, *, tail: int | None = None, since: datetime | str | None = None
    ) -> builtins.list[LogEntry]:
        answer = await self._client.send(calls.job_logs(job_id, tail=tail, since=since))
        return answer.logs

    def follow_logs(
        self,
        job_id: str,
        *,
        tail: int | None = None,
        since: datetime | str | None = None,
        last_event_id: str | None = None,
    ) -> AsyncIterator[LogEntry]:
        """Log lines as the job prints them, until it has ended; resumes after a lost
        connection without losing or repeating a line."""
        call = calls.follow_logs(job_id, tail=tail, since=since)
        return self._client.follow(call, last_event_id=last_event_id)

    async def events(self, job_id: str) -> builtins.list[JobEventEntry]:
        answer = await self._client.send(calls.job_events(job_id))
        return answer.events

    def follow_events(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[JobEventEntry]:
        """The job's events, stored ones first, until it has ended."""
        return self._client.follow(calls.follow_job_events(job_id), last_event_id=last_event_id)

    async def account_events(self, *, limit: int | None = None) -> builtins.list[AccountEvent]:
        """The latest status changes of every job of the account."""
        answer = await self._client.send(calls.account_events(limit=limit))
        return answer.events

    def follow_account_events(
        self,
        *,
        last_event_id: str | None = None,
    ) -> AsyncIterator[AccountEvent]:
        """Status changes of every job of the account from now on (never ends by itself)."""
        return self._client.follow(calls.follow_account_events(), last_event_id=last_event_id)

    async def wait(self, job_id: str) -> Job:
        """Wait until the job has ended; the job as it ended."""
        async for _ in self.follow_events(job_id):
            pass
        return await self.get(job_id)

    async def output(self, job_id: str, dest_dir: str | Path = ".") -> builtins.list[Path]:
        """Download what the job left in /cortex/output/ into `dest_dir` (created if need be):
        its one file as itself, several extracted from the tar.gz the gateway sends. Returns
        the files written; raises OutputNotFound when the job has none."""
        return await self._client.download(f"/jobs/{job_id}/output", Path(dest_dir))

    async def metrics(
        self, job_id: str, *, period: str | None = None, resolution: str | None = None
    ) -> Metrics:
        call = calls.job_metrics(job_id, period=period, resolution=resolution)
        return await self._client.send(call)

    async def stream_token(self, job_id: str) -> StreamToken:
        return await self._client.send(calls.stream_token(job_id))

    async def account_stream_token(self) -> StreamToken:
        """A short-lived token that opens the account's status stream (for EventSource)."""
        return await self._client.send(calls.account_stream_token())


class Webhooks:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def create(
        self,
        url: str,
        events: Iterable[str],
        *,
        secret: str | None = None,
        description: str | None = None,
    ) -> EndpointWithSecret:
        payload = calls.body(
            None, dict(url=url, events=list(events), secret=secret, description=description)
        )
        return await self._client.send(calls.create_webhook(payload))

    async def list(self, *, page: int | None = None, limit: int | None = None) -> Page[Endpoint]:
        return await self._client.send(calls.list_webhooks(page=page, limit=limit))

    def iterate(self, *, page_size: int = 100) -> AsyncIterator[Endpoint]:
        return self._client.iterate(calls.list_webhooks(page=None, limit=page_size))

    async def get(self, endpoint_id: str) -> Endpoint:
        return await self._client.send(calls.get_webhook(endpoint_id))

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        active: bool | None = None,
        description: str | None = None,
    ) -> Endpoint:
        """Change the fields given; the others stay as they are."""
        fields = dict(
            url=url,
            events=None if events is None else list(events),
            active=active,
            description=description,
        )
        return await self._client.send(calls.update_webhook(endpoint_id, calls.body(None, fields)))

    async def delete(self, endpoint_id: str) -> None:
        await self._client.send(calls.delete_webhook(endpoint_id))

    async def rotate_secret(
        self,
        endpoint_id: str,
        *,
        secret: str | None = None,
    ) -> EndpointWithSecret:
        """A new signing secret (generated unless given); the old one keeps signing for the
        gateway's rotation grace period."""
        payload = calls.body(None, dict(secret=secret))
        return await self._client.send(calls.rotate_webhook_secret(endpoint_id, payload))

    async def test(self, endpoint_id: str) -> Delivery:
        """Send a `webhook.test` event to the endpoint."""
        return await self._client.send(calls.send_test_webhook(endpoint_id))

    async def deliveries(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[Delivery]:
        call = calls.list_deliveries(endpoint_id, status=status, page=page, limit=limit)
        return await self._client.send(call)

    def iterate_deliveries(
        self, endpoint_id: str, *, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Delivery]:
        call = calls.list_deliveries(endpoint_id, status=status, page=None, limit=page_size)
        return self._client.iterate(call)

    async def retry(self, endpoint_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now."""
        return await self._client.send(calls.retry_delivery(endpoint_id, delivery_id))


class Providers:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def list(self) -> builtins.list[Provider]:
        """Every provider this gateway knows, with its health, capabilities and pricing."""
        return await self._client.send(calls.list_providers())

    async def get(self, name: str) -> Provider:
        return await self._client.send(calls.get_provider(name))

    async def quote(
        self, spec: JobSpec | Mapping[str, Any] | None = None, **fields: Any
    ) -> QuoteComparison:
        """Where a job would be placed and at what price, without submitting it: a job
        specification (as `jobs.submit` takes it; `provider` defaults to "auto")."""
        return await self._client.send(calls.quote(calls.body(spec, fields)))


class Accounts:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def get(self) -> Account:
        """The key's account: its rate limit, quotas with what counts against them now, engine
        slots, budget with what is spent and left, and the providers it may use."""
        return await self._client.send(calls.get_account())


class Templates:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def create(
        self,
        name: str,
        config: JobSpec | Mapping[str, Any],
        *,
        description: str | None = None,
    ) -> Template:
        """A named job specification, checked as POST /jobs checks a job."""
        payload = calls.body(None, dict(name=name, description=description))
        payload["config"] = calls.body(config, {})
        return await self._client.send(calls.create_template(payload))

    async def list(
        self, *, page: int | None = None, limit: int | None = None, sort: str | None = None
    ) -> Page[Template]:
        return await self._client.send(calls.list_templates(page=page, limit=limit, sort=sort))

    def iterate(self, *, sort: str | None = None, page_size: int = 100) -> AsyncIterator[Template]:
        return self._client.iterate(calls.list_templates(page=None, limit=page_size, sort=sort))

    async def get(self, template_id: str) -> Template:
        return await self._client.send(calls.get_template(template_id))

    async def update(
        self,
        template_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        config: JobSpec | Mapping[str, Any] | None = None,
    ) -> Template:
        """Change the fields given; a new config replaces the old one whole."""
        payload = calls.body(None, dict(name=name, description=description))
        if config is not None:
            payload["config"] = calls.body(config, {})
        return await self._client.send(calls.update_template(template_id, payload))

    async def delete(self, template_id: str) -> None:
        await self._client.send(calls.delete_template(template_id))

    async def submit(
        self,
        template_id: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Job:
        """A job from the template, `overrides` (camelCase, as the API takes them) merged in
        as a JSON merge patch: objects such as env merge by key, lists replace."""
        call = calls.submit_from_template(template_id, dict(overrides or {}), idempotency_key)
        return await self._client.send(call)


class Batches:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def submit(
        self,
        jobs: Iterable[JobSpec | Mapping[str, Any]],
        *,
        concurrency: int | None = None,
        idempotency_key: str | None = None,
    ) -> BatchSubmitted:
        """All the jobs or none; at most `concurrency` of them run at once (without it, the
        gateway's default: 10)."""
        payload: dict[str, Any] = {"jobs": [calls.body(job, {}) for job in jobs]}
        if concurrency is not None:
            payload["concurrency"] = concurrency
        return await self._client.send(calls.submit_batch(payload, idempotency_key))

    async def get(self, batch_id: str) -> Batch:
        """The batch with how many of its jobs are in each status."""
        return await self._client.send(calls.get_batch(batch_id))

    async def list(
        self,
        *,
        page: int | None = None,
        limit: int | None = None,
    ) -> Page[BatchSummary]:
        return await self._client.send(calls.list_batches(page=page, limit=limit))

    def iterate(self, *, page_size: int = 100) -> AsyncIterator[BatchSummary]:
        return self._client.iterate(calls.list_batches(page=None, limit=page_size))

    async def cancel(self, batch_id: str) -> Batch:
        """Cancel every unfinished job of the batch."""
        return await self._client.send(calls.cancel_batch(batch_id))
