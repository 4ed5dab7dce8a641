"""The fake payment service: allocations and their demand decorations, debit notes a
provider sends while an activity runs (and ends the agreement over when unaccepted in time),
invoices once an agreement ends, and their acceptance against an allocation."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from tests.fakes.golem.daemon import Daemon
from tests.fakes.golem.records import (
    REQUESTOR_ID,
    Activity,
    Agreement,
    FakeError,
    new_id,
    now_iso,
    parse_iso,
    platform_name,
)


class Payments(Daemon):
    def create_allocation(self, body: dict[str, Any]) -> dict[str, Any]:
        if "totalAmount" not in body:
            raise FakeError(400, "totalAmount is required")
        platform = body.get("paymentPlatform") or "erc20-holesky-tglm"
        if isinstance(platform, dict):
            platform = platform_name(platform.get("network") or "holesky")
        total = Decimal(str(body["totalAmount"]))
        allocation = {
            "allocationId": new_id(),
            "address": body.get("address") or REQUESTOR_ID,
            "paymentPlatform": platform,
            "totalAmount": str(total),
            "spentAmount": "0",
            "remainingAmount": str(total),
            "timestamp": now_iso(),
            "timeout": body.get("timeout"),
            "makeDeposit": False,
        }
        self.allocations[allocation["allocationId"]] = allocation
        return allocation

    def allocation(self, allocation_id: str) -> dict[str, Any]:
        allocation = self.allocations.get(allocation_id)
        if allocation is None or allocation_id in self.released:
            raise FakeError(404, f"Allocation {allocation_id} not found")
        return allocation

    def release_allocation(self, allocation_id: str) -> None:
        self.allocation(allocation_id)
        self.released.add(allocation_id)

    def requestor_accounts(self) -> list[dict[str, Any]]:
        return [
            {
                "platform": platform_name(network),
                "address": REQUESTOR_ID,
                "driver": "erc20",
                "network": network,
                "token": "GLM" if network == "polygon" else "tGLM",
                "send": True,
                "receive": False,
            }
            for network in ("polygon", "holesky", "hoodi")
        ]

    def demand_decorations(self, allocation_ids: list[str]) -> dict[str, Any]:
        properties, constraints = [], []
        for allocation_id in allocation_ids:
            allocation = self.allocation(allocation_id)
            platform = allocation["paymentPlatform"]
            properties.append(
                {
                    "key": f"golem.com.payment.platform.{platform}.address",
                    "value": allocation["address"],
                }
            )
            properties.append({"key": "golem.com.payment.protocol.version", "value": "3"})
            constraints.append(f"(golem.com.payment.platform.{platform}.address=*)")
        return {"properties": properties, "constraints": constraints}

    # -- payment: debit notes and invoices -----------------------------------------------------

    async def _debit_notes(self, activity: Activity) -> None:
        agreement = activity.agreement
        provider = agreement.provider
        previous: str | None = None
        while True:
            await asyncio.sleep(self.timing.debit_note_interval)
            if activity.state == "Terminated" or provider.vanished:
                return
            amount = Decimal(str(round(provider.cost(activity.usage()), 18)))
            note = {
                "debitNoteId": new_id(),
                "issuerId": provider.node_id,
                "recipientId": REQUESTOR_ID,
                "payeeAddr": provider.node_id,
                "payerAddr": REQUESTOR_ID,
                "paymentPlatform": self._platform(agreement),
                "previousDebitNoteId": previous,
                "timestamp": now_iso(),
                "agreementId": agreement.id,
                "activityId": activity.id,
                "totalAmountDue": str(amount),
                "usageCounterVector": activity.usage_vector(),
                "paymentDueDate": None,
                "status": "RECEIVED",
            }
            previous = note["debitNoteId"]
            self.debit_notes[note["debitNoteId"]] = note
            self.debit_note_events.append(
                {
                    "eventType": "DebitNoteReceivedEvent",
                    "eventDate": note["timestamp"],
                    "debitNoteId": note["debitNoteId"],
                }
            )
            await self.notify()
            timeout = agreement.accept_timeout()
            if timeout is not None:
                self.spawn(self._acceptance_deadline(activity, note, timeout))

    async def _acceptance_deadline(
        self, activity: Activity, note: dict[str, Any], timeout: float
    ) -> None:
        await asyncio.sleep(timeout)
        agreement = activity.agreement
        if note["status"] != "ACCEPTED" and agreement.state == "Approved":
            reason = "Requestor didn't accept DebitNote in time"
            await self._terminate(agreement, "Provider", reason)

    def _platform(self, agreement: Agreement) -> str:
        chosen = agreement.demand.properties.get("golem.com.payment.chosen-platform")
        if chosen:
            return str(chosen)
        for platform in agreement.provider.platforms:
            if f"golem.com.payment.platform.{platform}.address" in agreement.demand.properties:
                return platform
        return agreement.provider.platforms[0]

    async def _invoice(self, agreement: Agreement) -> None:
        await asyncio.sleep(self.timing.invoice_seconds)
        if agreement.invoiced or agreement.approved_at is None:
            return
        agreement.invoiced = True
        activities = [self.activities[a] for a in agreement.activities]
        amount = sum(
            (Decimal(str(round(agreement.provider.cost(a.usage()), 18))) for a in activities),
            Decimal(str(agreement.provider.start_price)) if not activities else Decimal(0),
        )
        invoice = {
            "invoiceId": new_id(),
            "issuerId": agreement.provider.node_id,
            "recipientId": REQUESTOR_ID,
            "payeeAddr": agreement.provider.node_id,
            "payerAddr": REQUESTOR_ID,
            "paymentPlatform": self._platform(agreement),
            "timestamp": now_iso(),
            "agreementId": agreement.id,
            "activityIds": list(agreement.activities),
            "amount": str(amount),
            "paymentDueDate": now_iso(time.time() + 3600),
            "status": "RECEIVED",
        }
        self.invoices[invoice["invoiceId"]] = invoice
        self.invoice_events.append(
            {
                "eventType": "InvoiceReceivedEvent",
                "eventDate": invoice["timestamp"],
                "invoiceId": invoice["invoiceId"],
            }
        )
        await self.notify()

    async def events_after(
        self, events: list[dict[str, Any]], after: str | None, timeout: float, max_events: int
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        floor = parse_iso(after) if after else float("-inf")
        while True:
            found = [e for e in events if parse_iso(e["eventDate"]) > floor][:max_events]
            if found or not await self.wait_for_change(deadline):
                return found

    def _accept(self, document: dict[str, Any], amount_key: str, body: dict[str, Any]) -> None:
        allocation = self.allocation(str(body.get("allocationId")))
        if allocation["paymentPlatform"] != document["paymentPlatform"]:
            raise FakeError(400, "allocation is on another payment platform")
        try:
            accepted = Decimal(str(body.get("totalAmountAccepted")))
        except ArithmeticError as exc:
            raise FakeError(400, "totalAmountAccepted must be a decimal") from exc
        if accepted != Decimal(document[amount_key]):
            raise FakeError(400, f"totalAmountAccepted {accepted} != {document[amount_key]}")
        if accepted > Decimal(allocation["totalAmount"]):
            raise FakeError(400, "amount exceeds the allocation")
        document["status"] = "ACCEPTED"
        agreement = document["agreementId"]
        self.paid_from.setdefault(agreement, allocation["allocationId"])
        self.accepted[agreement] = max(self.accepted.get(agreement, Decimal(0)), accepted)
        spent = sum(
            (
                amount
                for agreement_id, amount in self.accepted.items()
                if self.paid_from.get(agreement_id) == allocation["allocationId"]
            ),
            Decimal(0),
        )
        allocation["spentAmount"] = str(spent)
        allocation["remainingAmount"] = str(Decimal(allocation["totalAmount"]) - spent)

    async def accept_debit_note(self, note_id: str, body: dict[str, Any]) -> None:
        note = self.debit_notes.get(note_id)
        if note is None:
            raise FakeError(404, f"DebitNote [{note_id}] not found")
        if note["status"] == "ACCEPTED":
            return
        self._accept(note, "totalAmountDue", body)
        self.debit_note_events.append(
            {
                "eventType": "DebitNoteAcceptedEvent",
                "eventDate": now_iso(),
                "debitNoteId": note_id,
            }
        )
        await self.notify()

    async def accept_invoice(self, invoice_id: str, body: dict[str, Any]) -> None:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise FakeError(404, f"Invoice [{invoice_id}] not found")
        if invoice["status"] == "ACCEPTED":
            return
        self._accept(invoice, "amount", body)
        self.invoice_events.append(
            {"eventType": "InvoiceAcceptedEvent", "eventDate": now_iso(), "invoiceId": invoice_id}
        )
        await self.notify()
