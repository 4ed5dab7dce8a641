"""Paying providers: accept every debit note and invoice of the gateway's agreements, against
the job's allocation, as they arrive.

Providers send debit notes while an activity runs and end the agreement when one is not
accepted within the negotiated timeout (golemfactory/yagna#1170, yapapi#287), then an invoice
once the agreement ends. One desk per adapter long-polls the daemon's debit-note and invoice
event feeds. Those feeds are persistent (read by `afterTimestamp`), so a restarted gateway
looks back a while and finds what arrived while it was down; a note for an agreement the desk
has not been told about yet waits until a job's status() registers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.errors import Unavailable
from providers.golem.yagna import PAYMENT, Yagna, YagnaError

logger = logging.getLogger(__name__)

LOOKBACK = timedelta(hours=1)
# Documents of agreements nobody registered (another application on the same daemon, or a
# job not looked at yet since a restart), kept for when they are.
MAX_UNCLAIMED = 1_000
KINDS = {"debitNote": "totalAmountDue", "invoice": "amount"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class PaymentDesk:
    def __init__(self, yagna: Yagna, poll: float) -> None:
        self._yagna = yagna
        self._poll = poll
        self._allocations: dict[str, str] = {}  # agreement -> allocation paying for it
        # document id -> (kind, agreement, document)
        self._unclaimed: OrderedDict[str, tuple[str, str, dict[str, Any]]] = OrderedDict()
        # agreement -> GLM accepted so far (debit notes), and the accepted invoice's amount.
        self.accepted: dict[str, float] = {}
        self.invoiced: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def register(self, agreement_id: str, allocation_id: str) -> None:
        """Pay this agreement's notes and invoice from this allocation."""
        if self._allocations.get(agreement_id) != allocation_id:
            self._allocations[agreement_id] = allocation_id
            for key in [k for k, item in self._unclaimed.items() if item[1] == agreement_id]:
                kind, _, document = self._unclaimed.pop(key)
                self._spawn_accept(kind, document)
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._feed(kind), name=f"golem-{kind}-events") for kind in KINDS
            ]

    def forget(self, agreement_id: str) -> None:
        self._allocations.pop(agreement_id, None)
        self.accepted.pop(agreement_id, None)
        self.invoiced.pop(agreement_id, None)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def invoice(self, agreement_id: str, after: str | None, within: float) -> float | None:
        """The agreement's invoice, accepted: from the event feed, or looked up among the
        invoices since `after` (after a restart the feed has moved past it). Waits up to
        `within` seconds for the provider to send it; None if it did not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            if agreement_id in self.invoiced:
                return self.invoiced[agreement_id]
            params = {"afterTimestamp": after} if after else None
            try:
                invoices = await self._yagna.call("GET", f"{PAYMENT}/invoices", params=params)
            except YagnaError as exc:
                raise Unavailable(f"golem: listing invoices failed: {exc.message}") from exc
            for document in invoices or []:
                if document.get("agreementId") == agreement_id:
                    await self._settle("invoice", document)
            remaining = deadline - loop.time()
            if agreement_id in self.invoiced or remaining <= 0:
                return self.invoiced.get(agreement_id)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, max(self._poll, 0.5))):
                    await self._changed.wait()

    async def _feed(self, kind: str) -> None:
        after = _iso(datetime.now(UTC) - LOOKBACK)
        while True:
            try:
                events = await self._yagna.call(
                    "GET",
                    f"{PAYMENT}/{kind}Events",
                    params={"afterTimestamp": after, "timeout": self._poll, "maxEvents": 100},
                    wait=self._poll,
                )
                for event in events or []:
                    after = str(event.get("eventDate") or after)
                    if event.get("eventType") == f"{kind[0].upper()}{kind[1:]}ReceivedEvent":
                        document = await self._yagna.call(
                            "GET", f"{PAYMENT}/{kind}s/{event[f'{kind}Id']}"
                        )
                        await self._settle(kind, document)
            except asyncio.CancelledError:
                raise
            except (Unavailable, YagnaError, KeyError, TypeError) as exc:
                logger.warning("golem: reading %s events failed, retrying: %s", kind, exc)
                await asyncio.sleep(max(self._poll, 1.0))

    def _spawn_accept(self, kind: str, document: dict[str, Any]) -> None:
        async def settle() -> None:
            try:
                await self._settle(kind, document)
            except (Unavailable, YagnaError) as exc:
                logger.warning("golem: accepting %s failed: %s", kind, exc)

        self._tasks.append(asyncio.create_task(settle()))

    async def _settle(self, kind: str, document: dict[str, Any]) -> None:
        agreement_id = str(document.get("agreementId"))
        amount = str(document.get(KINDS[kind]))
        allocation_id = self._allocations.get(agreement_id)
        if allocation_id is None:
            key = str(document.get(f"{kind}Id"))
            self._unclaimed[key] = (kind, agreement_id, document)
            while len(self._unclaimed) > MAX_UNCLAIMED:
                self._unclaimed.popitem(last=False)
            return
        if document.get("status") in ("RECEIVED", "ISSUED", "REJECTED"):
            try:
                await self._yagna.call(
                    "POST",
                    f"{PAYMENT}/{kind}s/{document[f'{kind}Id']}/accept",
                    json_body={"totalAmountAccepted": amount, "allocationId": allocation_id},
                )
            except YagnaError as exc:
                logger.warning(
                    "golem: the daemon refused to accept %s %s of %s GLM: %s",
                    kind,
                    document.get(f"{kind}Id"),
                    amount,
                    exc.message,
                )
                return
        glm = float(amount)
        if kind == "invoice":
            self.invoiced[agreement_id] = glm
        else:
            self.accepted[agreement_id] = max(self.accepted.get(agreement_id, 0.0), glm)
        self._changed.set()
