"""The fake yagna's HTTP surface: the market, activity and payment REST APIs under their
yagna prefixes, the Golem registry's `/v1/image/info`, and `/_fake/*` routes for tests.

Wire format as in ya-client's specs (market-api.yaml, activity-api.yaml, payment-api.yaml) and
yagna's handlers: ids answered as bare JSON strings, errors as `{"message": ...}`, Bearer app
key on every daemon route, ExeScript as `{"text": "<JSON array>"}`, batch results as JSON or,
with `Accept: text/event-stream`, as `event: runtime` frames with `:ping` lines between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from tests.fakes.golem.network import FakeError, FakeYagna

Handler = Callable[[Request], Awaitable[Response]]


def _json(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status_code=status)


def _empty(status: int = 204) -> Response:
    return Response(status_code=status)


def _timeout(request: Request, default: float = 5.0) -> float:
    raw = request.query_params.get("timeout")
    return max(float(raw), 0.0) if raw is not None else default


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise FakeError(400, f"body is not JSON: {exc}") from exc


def build_app(yagna: FakeYagna) -> Starlette:
    def daemon(handler: Handler) -> Handler:
        """yagna's REST routes: Bearer app key, ErrorMessage bodies."""

        async def endpoint(request: Request) -> Response:
            yagna.requests.append((request.method, request.url.path))
            expected = f"Bearer {yagna.app_key}"
            if request.headers.get("authorization") != expected:
                return _json({"message": "Invalid application key"}, 401)
            try:
                return await handler(request)
            except FakeError as exc:
                return _json({"message": exc.message}, exc.status)

        return endpoint

    def path(request: Request, name: str) -> str:
        return str(request.path_params[name])

    # -- registry ------------------------------------------------------------------------------

    async def image_info(request: Request) -> Response:
        params = request.query_params
        try:
            return _json(yagna.image_info(params.get("tag"), params.get("hash")))
        except FakeError as exc:
            return _json({"error": exc.message}, exc.status)

    # -- market --------------------------------------------------------------------------------

    async def demands(request: Request) -> Response:
        if request.method == "GET":
            return _json(yagna.list_demands())
        return _json(await yagna.subscribe(await _body(request)), 201)

    async def unsubscribe(request: Request) -> Response:
        await yagna.unsubscribe(path(request, "sub"))
        return _empty()

    async def demand_events(request: Request) -> Response:
        max_events = int(request.query_params.get("maxEvents", "10"))
        events = await yagna.collect(path(request, "sub"), _timeout(request), max_events)
        return _json(events)

    async def counter(request: Request) -> Response:
        ours = await yagna.counter(
            path(request, "sub"), path(request, "proposal"), await _body(request)
        )
        return _json(ours, 201)

    async def agreements(request: Request) -> Response:
        if request.method == "GET":
            return _json(yagna.list_agreements(request.query_params.get("appSessionId")))
        return _json(yagna.create_agreement(await _body(request)), 201)

    async def agreement(request: Request) -> Response:
        return _json(yagna.agreement(path(request, "agreement")).document())

    async def confirm(request: Request) -> Response:
        await yagna.confirm(path(request, "agreement"), request.query_params.get("appSessionId"))
        return _empty()

    async def wait(request: Request) -> Response:
        await yagna.wait_for_approval(path(request, "agreement"), _timeout(request))
        return _empty()

    async def cancel(request: Request) -> Response:
        await yagna.cancel_agreement(path(request, "agreement"))
        return _empty()

    async def terminate(request: Request) -> Response:
        body = await request.body()
        reason = json.loads(body) if body else None
        await yagna.terminate(path(request, "agreement"), reason)
        return _empty()

    # -- activity ------------------------------------------------------------------------------

    async def create_activity(request: Request) -> Response:
        body = await _body(request)
        agreement_id = body if isinstance(body, str) else (body or {}).get("agreementId")
        activity = await yagna.create_activity(str(agreement_id))
        if isinstance(body, str):
            return _json(activity.id, 201)
        return _json({"activityId": activity.id}, 201)

    async def destroy(request: Request) -> Response:
        await yagna.destroy(path(request, "activity"))
        return _json(None)

    async def exec_(request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise FakeError(400, 'body must be {"text": "<ExeScript JSON>"}')
        return _json(await yagna.exec(path(request, "activity"), body["text"]))

    async def results(request: Request) -> Response:
        activity_id, batch_id = path(request, "activity"), path(request, "batch")
        if request.headers.get("accept") == "text/event-stream" and yagna.streams_results:
            queue = yagna.subscribe_batch(activity_id, batch_id)
            return StreamingResponse(
                _runtime_events(yagna, activity_id, batch_id, queue),
                media_type="text/event-stream",
            )
        index = request.query_params.get("commandIndex")
        found = await yagna.batch_results(
            activity_id, batch_id, _timeout(request), int(index) if index is not None else None
        )
        return _json(found)

    async def state(request: Request) -> Response:
        return _json(yagna.activity_state(path(request, "activity")))

    async def usage(request: Request) -> Response:
        return _json(yagna.activity_usage(path(request, "activity")))

    # -- payment -------------------------------------------------------------------------------

    async def allocations(request: Request) -> Response:
        if request.method == "GET":
            return _json(
                [a for a in yagna.allocations.values() if a["allocationId"] not in yagna.released]
            )
        return _json(yagna.create_allocation(await _body(request)), 201)

    async def allocation(request: Request) -> Response:
        allocation_id = path(request, "allocation")
        if request.method == "DELETE":
            yagna.release_allocation(allocation_id)
            return _json(None)
        return _json(yagna.allocation(allocation_id))

    async def accounts(request: Request) -> Response:
        return _json(yagna.requestor_accounts())

    async def decorations(request: Request) -> Response:
        ids = request.query_params.getlist("allocationIds")
        split = [part for raw in ids for part in raw.split(",") if part]
        return _json(yagna.demand_decorations(split))

    def event_feed(events: Callable[[], list[dict[str, Any]]]) -> Handler:
        async def feed(request: Request) -> Response:
            params = request.query_params
            found = await yagna.events_after(
                events(),
                params.get("afterTimestamp"),
                _timeout(request),
                int(params.get("maxEvents", "10")),
            )
            return _json(found)

        return feed

    def documents(store: Callable[[], dict[str, dict[str, Any]]]) -> Handler:
        async def listing(request: Request) -> Response:
            return _json(list(store().values()))

        return listing

    def document(store: Callable[[], dict[str, dict[str, Any]]], kind: str) -> Handler:
        async def one(request: Request) -> Response:
            found = store().get(path(request, "id"))
            if found is None:
                raise FakeError(404, f"{kind} [{path(request, 'id')}] not found")
            return _json(found)

        return one

    async def accept_debit_note(request: Request) -> Response:
        await yagna.accept_debit_note(path(request, "id"), await _body(request))
        return _json(None)

    async def accept_invoice(request: Request) -> Response:
        await yagna.accept_invoice(path(request, "id"), await _body(request))
        return _json(None)

    # -- test control --------------------------------------------------------------------------

    async def held(request: Request) -> Response:
        return _json(yagna.held(request.query_params["job"]))

    async def summary(request: Request) -> Response:
        return _json(yagna.summary())

    async def vanish(request: Request) -> Response:
        try:
            await yagna.vanish(yagna.provider_named(path(request, "name")))
        except FakeError as exc:
            return _json({"message": exc.message}, exc.status)
        return _json(None)

    async def provider_terminates(request: Request) -> Response:
        """The provider ends its agreements itself, giving the body's `reason`."""
        provider = yagna.provider_named(path(request, "name"))
        reason = str((await _body(request)).get("reason") or "Provider decided")
        await yagna.terminate_as_provider(provider, reason)
        return _json(None)

    async def provider_behaves(request: Request) -> Response:
        """How the provider will behave from now on: `approves` (false: it rejects the
        agreements it is asked to approve), `deployError` / `startError` (its ExeUnit fails
        that command with the message)."""
        provider = yagna.provider_named(path(request, "name"))
        body = await _body(request)
        if "approves" in body:
            provider.approves = bool(body["approves"])
        if "deployError" in body:
            provider.deploy_error = body["deployError"]
        if "startError" in body:
            provider.start_error = body["startError"]
        return _json(None)

    market = [
        Route("/demands", daemon(demands), methods=["GET", "POST"]),
        Route("/demands/{sub}", daemon(unsubscribe), methods=["DELETE"]),
        Route("/demands/{sub}/events", daemon(demand_events)),
        Route("/demands/{sub}/proposals/{proposal}", daemon(counter), methods=["POST"]),
        Route("/agreements", daemon(agreements), methods=["GET", "POST"]),
        Route("/agreements/{agreement}", daemon(agreement)),
        Route("/agreements/{agreement}/confirm", daemon(confirm), methods=["POST"]),
        Route("/agreements/{agreement}/wait", daemon(wait), methods=["POST"]),
        Route("/agreements/{agreement}/cancel", daemon(cancel), methods=["POST"]),
        Route("/agreements/{agreement}/terminate", daemon(terminate), methods=["POST"]),
    ]
    activity = [
        Route("/activity", daemon(create_activity), methods=["POST"]),
        Route("/activity/{activity}", daemon(destroy), methods=["DELETE"]),
        Route("/activity/{activity}/exec", daemon(exec_), methods=["POST"]),
        Route("/activity/{activity}/exec/{batch}", daemon(results)),
        Route("/activity/{activity}/state", daemon(state)),
        Route("/activity/{activity}/usage", daemon(usage)),
    ]
    payment = [
        Route("/allocations", daemon(allocations), methods=["GET", "POST"]),
        Route("/allocations/{allocation}", daemon(allocation), methods=["GET", "DELETE"]),
        Route("/demandDecorations", daemon(decorations)),
        Route("/requestorAccounts", daemon(accounts)),
        Route("/debitNoteEvents", daemon(event_feed(lambda: yagna.debit_note_events))),
        Route("/invoiceEvents", daemon(event_feed(lambda: yagna.invoice_events))),
        Route("/debitNotes", daemon(documents(lambda: yagna.debit_notes))),
        Route("/debitNotes/{id}", daemon(document(lambda: yagna.debit_notes, "DebitNote"))),
        Route("/debitNotes/{id}/accept", daemon(accept_debit_note), methods=["POST"]),
        Route("/invoices", daemon(documents(lambda: yagna.invoices))),
        Route("/invoices/{id}", daemon(document(lambda: yagna.invoices, "Invoice"))),
        Route("/invoices/{id}/accept", daemon(accept_invoice), methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await yagna.shutdown()

    return Starlette(
        routes=[
            Route("/v1/image/info", image_info),
            Mount("/market-api/v1", routes=market),
            Mount("/activity-api/v1", routes=activity),
            Mount("/payment-api/v1", routes=payment),
            Route("/_fake/held", held),
            Route("/_fake/summary", summary),
            Route("/_fake/providers/{name}/vanish", vanish, methods=["POST"]),
            Route("/_fake/providers/{name}/terminate", provider_terminates, methods=["POST"]),
            Route("/_fake/providers/{name}", provider_behaves, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


async def _runtime_events(
    yagna: FakeYagna, activity_id: str, batch_id: str, queue: asyncio.Queue[Any]
) -> AsyncIterator[bytes]:
    """yagna's stream_results: `event: runtime` frames numbered from 0, a `:ping` line every
    15 s (configurable here), for as long as the client stays; it ends when the exe-unit
    goes away."""
    sequence = 0
    try:
        while True:
            try:
                async with asyncio.timeout(yagna.timing.ping_seconds):
                    event = await queue.get()
            except TimeoutError:
                yield b":ping\n"
                continue
            if event is None:
                return
            data = json.dumps(event, separators=(",", ":"))
            yield f"event: runtime\ndata: {data}\nid: {sequence}\n\n".encode()
            sequence += 1
    finally:
        yagna.unsubscribe_batch(activity_id, batch_id, queue)
