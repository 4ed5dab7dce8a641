"""The fake activity service: activities on approved agreements, ExeScript batches run as
local processes, results long-polled or streamed, state and usage, providers that vanish."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any

from tests.fakes.golem.daemon import Daemon
from tests.fakes.golem.records import (
    GSB_NOT_FOUND,
    Activity,
    Batch,
    FakeError,
    ProviderNode,
    new_id,
    now_iso,
)
from tests.fakes.golem.transfer import PREFIX, TransferFailed, VmFiles, transfer


class Activities(Daemon):
    async def create_activity(self, agreement_id: str) -> Activity:
        agreement = self.agreement(agreement_id)
        if agreement.provider.vanished:
            raise FakeError(500, GSB_NOT_FOUND.format(node=agreement.provider.node_id))
        if agreement.state != "Approved":
            raise FakeError(
                500,
                f"Agreement {agreement_id} is not Approved. Current state: {agreement.state}",
            )
        if agreement.activities:
            # Providers allow one activity per agreement unless multi-activity was negotiated.
            raise FakeError(500, f"Agreement {agreement_id} already has an activity")
        activity = Activity(new_id(), agreement)
        agreement.activities.append(activity.id)
        self.activities[activity.id] = activity
        self.spawn(self._debit_notes(activity))
        return activity

    def activity(self, activity_id: str) -> Activity:
        activity = self.activities.get(activity_id)
        if activity is None:
            raise FakeError(404, f"Activity [{activity_id}] not found")
        return activity

    def reachable(self, activity: Activity) -> None:
        provider = activity.agreement.provider
        if provider.vanished:
            raise FakeError(500, GSB_NOT_FOUND.format(node=provider.node_id))

    async def destroy(self, activity_id: str) -> None:
        activity = self.activity(activity_id)
        self.reachable(activity)
        if activity.state != "Terminated":
            await self._end_activity(activity, None, None)

    async def _end_activity(
        self, activity: Activity, reason: str | None, message: str | None
    ) -> None:
        activity.state, activity.reason, activity.error_message = "Terminated", reason, message
        if activity.ended is None:
            activity.ended = time.time()
        await self._kill(activity)
        if activity.files is not None:
            activity.files.remove()
        for batch in activity.batches.values():
            for queue in batch.subscribers:
                queue.put_nowait(None)
        await self.notify()

    async def _kill(self, activity: Activity) -> None:
        process = activity.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def exec(self, activity_id: str, text: str) -> str:
        activity = self.activity(activity_id)
        self.reachable(activity)
        if activity.state == "Terminated":
            raise FakeError(500, f"Activity [{activity_id}] is Terminated")
        try:
            commands = json.loads(text)
        except ValueError as exc:
            raise FakeError(400, f"ExeScript is not JSON: {exc}") from exc
        if not isinstance(commands, list) or not all(
            isinstance(c, dict) and len(c) == 1 for c in commands
        ):
            raise FakeError(400, "ExeScript must be a list of single-key command objects")
        batch = Batch(new_id(), commands)
        activity.batches[batch.id] = batch
        self.spawn(self._run_batch(activity, batch))
        return batch.id

    def batch(self, activity_id: str, batch_id: str) -> tuple[Activity, Batch]:
        activity = self.activity(activity_id)
        self.reachable(activity)
        batch = activity.batches.get(batch_id)
        if batch is None:
            raise FakeError(404, f"Batch id={batch_id}")
        return activity, batch

    def _emit(self, batch: Batch, index: int, kind: dict[str, Any]) -> None:
        # RuntimeEvent's timestamp is a chrono NaiveDateTime (UTC, no zone suffix).
        stamp = now_iso().removesuffix("Z")
        event = {"batch_id": batch.id, "index": index, "timestamp": stamp, "kind": kind}
        for queue in batch.subscribers:
            queue.put_nowait(event)

    async def _result(
        self,
        batch: Batch,
        index: int,
        ok: bool,
        *,
        message: str | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        last: bool = False,
    ) -> None:
        result: dict[str, Any] = {
            "index": index,
            "eventDate": now_iso(),
            "result": "Ok" if ok else "Error",
            "isBatchFinished": last or not ok,
        }
        for key, value in (("message", message), ("stdout", stdout), ("stderr", stderr)):
            if value is not None:
                result[key] = value
        batch.results.append(result)
        if result["isBatchFinished"]:
            batch.finished = True
        await self.notify()

    async def _run_batch(self, activity: Activity, batch: Batch) -> None:
        count = len(batch.commands)
        for index, command in enumerate(batch.commands):
            if activity.state == "Terminated":
                return
            (name, body), last = next(iter(command.items())), index == count - 1
            self._emit(batch, index, {"started": {"command": command}})
            try:
                code, message, outputs = await self._command(activity, batch, index, name, body)
            except FakeError as exc:
                code, message, outputs = -1, exc.message, {}
            if activity.state == "Terminated":
                return
            self._emit(batch, index, {"finished": {"return_code": code, "message": message}})
            if code != 0 and message is None:
                message = f"ExeScript command exited with code {code}"
            await self._result(batch, index, code == 0, message=message, last=last, **outputs)
            if code != 0:
                return

    async def _command(
        self, activity: Activity, batch: Batch, index: int, name: str, body: Any
    ) -> tuple[int, str | None, dict[str, str]]:
        if name == "deploy":
            await asyncio.sleep(self.timing.deploy_seconds)
            provider = activity.agreement.provider
            if provider.deploy_error is not None:
                return 1, provider.deploy_error, {}
            package = activity.agreement.demand.properties.get("golem.srv.comp.task_package", "")
            sha3 = str(package).split(":")[2] if str(package).count(":") >= 3 else ""
            if sha3 not in self.images.values():
                return 1, f"Deploy failed: cannot download image {package}", {}
            activity.env = {str(k): str(v) for k, v in ((body or {}).get("env") or {}).items()}
            if (body or {}).get("volumes"):
                activity.files = activity.files or VmFiles()
                activity.files.deploy(body["volumes"])
            activity.state, activity.deployed_package = "Deployed", package
            return 0, None, {}
        if name == "start":
            if activity.state != "Deployed":
                return 1, "Start: the activity is not deployed", {}
            if activity.agreement.provider.start_error is not None:
                return 1, activity.agreement.provider.start_error, {}
            activity.state = "Ready"
            return 0, None, {}
        if name == "run":
            if activity.state != "Ready":
                return 1, "Run: the activity is not started", {}
            return await self._run(activity, batch, index, body or {})
        if name == "transfer":
            if activity.state != "Ready":
                return -1, "Local service error: State error: the activity is not started", {}
            try:
                await transfer(
                    activity.files or VmFiles(volumes={}),
                    body or {},
                    self.timing.transfer_retry_seconds,
                )
            except TransferFailed as exc:
                return -1, PREFIX + str(exc), {}
            return 0, None, {}
        if name == "terminate":
            return 0, None, {}
        return 1, f"unsupported command {name!r}", {}

    async def _run(
        self, activity: Activity, batch: Batch, index: int, body: dict[str, Any]
    ) -> tuple[int, str | None, dict[str, str]]:
        entry_point, args = body.get("entry_point"), body.get("args") or []
        if activity.files is not None:
            args = [activity.files.rewrite(str(a)) for a in args]
        if not isinstance(entry_point, str) or not entry_point.startswith("/"):
            return 1, "run: entry_point must be an absolute path in the image", {}
        capture = body.get("capture") or {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **activity.env}
        try:
            process = await asyncio.create_subprocess_exec(
                entry_point,
                *[str(a) for a in args],
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
                # Its own process group, so destroying the activity ends everything it started
                # (as a VM's end would), and its pipes close.
                start_new_session=True,
            )
        except OSError as exc:
            return 127, f"run: cannot start {entry_point}: {exc}", {}
        activity.process, activity.run_started = process, time.time()
        kept: dict[str, list[str]] = {"stdout": [], "stderr": []}

        async def pump(stream: asyncio.StreamReader, name: str) -> None:
            mode = capture.get(name)
            while chunk := await stream.read(4096):
                text = chunk.decode(errors="replace")
                if mode is None:
                    continue  # no capture: output discarded, as yagna's exe-unit does
                kept[name].append(text)
                if "stream" in mode:
                    self._emit(batch, index, {name: text})

        assert process.stdout is not None and process.stderr is not None
        await asyncio.gather(pump(process.stdout, "stdout"), pump(process.stderr, "stderr"))
        code = await process.wait()
        activity.cpu_seconds += time.time() - activity.run_started
        activity.run_started, activity.process = None, None
        outputs = {name: "".join(parts) for name, parts in kept.items() if capture.get(name)}
        return code, None, outputs

    async def batch_results(
        self, activity_id: str, batch_id: str, timeout: float, command_index: int | None
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            _, batch = self.batch(activity_id, batch_id)
            done = batch.finished or (
                command_index is not None
                and any(r["index"] >= command_index for r in batch.results)
            )
            if done or (command_index is None and batch.results and timeout == 0):
                return list(batch.results)
            if not await self.wait_for_change(deadline):
                if command_index is not None:
                    raise FakeError(408, "Timeout waiting for command to finish")
                return list(batch.results)

    def subscribe_batch(self, activity_id: str, batch_id: str) -> asyncio.Queue[Any]:
        activity, batch = self.batch(activity_id, batch_id)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        if activity.state == "Terminated":
            queue.put_nowait(None)
        batch.subscribers.append(queue)
        return queue

    def unsubscribe_batch(self, activity_id: str, batch_id: str, queue: Any) -> None:
        batch = self.activities[activity_id].batches[batch_id]
        with contextlib.suppress(ValueError):
            batch.subscribers.remove(queue)

    def activity_state(self, activity_id: str) -> dict[str, Any]:
        activity = self.activity(activity_id)
        if activity.agreement.provider.vanished:
            # The requestor's daemon keeps what it last knew; the provider's end is gone.
            return {
                "state": ["Terminated", None],
                "reason": "provider unreachable",
                "errorMessage": GSB_NOT_FOUND.format(node=activity.agreement.provider.node_id),
            }
        state: dict[str, Any] = {"state": [activity.state, None]}
        if activity.reason:
            state["reason"] = activity.reason
        if activity.error_message:
            state["errorMessage"] = activity.error_message
        return state

    def activity_usage(self, activity_id: str) -> dict[str, Any]:
        activity = self.activity(activity_id)
        self.reachable(activity)
        return {"currentUsage": activity.usage_vector(), "timestamp": int(time.time())}

    async def vanish(self, provider: ProviderNode) -> None:
        provider.vanished = True
        for activity in self.activities.values():
            if activity.agreement.provider is provider and activity.state != "Terminated":
                if activity.ended is None:
                    activity.ended = time.time()
                await self._kill(activity)
                for batch in activity.batches.values():
                    for queue in batch.subscribers:
                        queue.put_nowait(None)
        await self.notify()
