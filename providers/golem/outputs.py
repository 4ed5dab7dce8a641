"""The job's output on Golem: the provider itself sends the files the workload left in
/cortex/output/ to a URL the gateway gives, with a second ExeScript batch on the activity
after the job's command ended and before the activity is destroyed.

What yagna allows (golemfactory/yagna @ 49e8b48):
- a `transfer` command moves a file off the provider to an http(s) URL with a PUT whose body
  is streamed without a length (exe-unit/components/transfer/src/http.rs: `upload_method:
  Method::PUT`, `send_stream`), a 4xx answer failing it at once and a 5xx or a broken
  connection retried twice (retry.rs);
- only from a volume (container.rs `resolve_path`: any other path is "path not found in
  container"), and the transfer command's own packing options are dropped on the way
  (transfer.rs: the TransferResource handler builds `TransferContext::default()`), so a
  directory is packed by a `run` of `tar` first.

So when the gateway will ask for the output (WorkloadSpec.upload_output) the deploy declares a
host volume at /cortex/output (`"volumes": {"/cortex/output": {"host": {}}}`, which
ya-runtime-vm reads as a volume override since 0.5.0), and the upload batch is `tar -cf` of
the directory into the volume itself (tar skips its own archive) then `transfer` of that file.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from typing import Any

from providers.base import OUTPUT_PATH
from providers.errors import HandleNotFound, Rejected, Unavailable
from providers.golem.work import exec_body
from providers.golem.yagna import ACTIVITY, Yagna, YagnaError
from providers.types import Handle, WorkloadSpec

HOST_VOLUME: dict[str, Any] = {"host": {}}
# Inside the volume, so that `transfer` can read it; a name no workload is likely to use.
ARCHIVE = f"{OUTPUT_PATH}/.cortex-output.tar"
PACK, SEND = 0, 1
# How long the provider may take to pack and send the output (the upload link lives as long).
UPLOAD_WAIT_SECONDS = 900.0


def volumes(spec: WorkloadSpec) -> dict[str, Any]:
    """The deploy command's `volumes`: the spec's own, and the output directory's host volume
    when the gateway will ask for the output (a spec volume at that path wins)."""
    declared: dict[str, Any] = {
        v.mount_path: {"storage": {"size": v.size_bytes}} for v in spec.volumes
    }
    if spec.upload_output:
        declared.setdefault(OUTPUT_PATH, HOST_VOLUME)
    return declared


def will_upload(handle: Handle) -> bool:
    """Whether the deploy declared the transferable volume at the output directory."""
    return bool((handle.get("run") or {}).get("volumes", {}).get(OUTPUT_PATH) == HOST_VOLUME)


def upload_script(url: str) -> list[dict[str, Any]]:
    parent, name = posixpath.split(OUTPUT_PATH)
    capture = {"stdout": {"atEnd": {"format": "str"}}, "stderr": {"atEnd": {"format": "str"}}}
    return [
        {
            "run": {
                "entry_point": "/bin/sh",
                "args": ["-c", f"tar -cf {ARCHIVE} -C {parent} {name}"],
                "capture": capture,
            }
        },
        {"transfer": {"from": f"container:{ARCHIVE}", "to": url}},
    ]


async def upload(
    yagna: Yagna, handle: Handle, url: str, poll: float, wait: float = UPLOAD_WAIT_SECONDS
) -> bool:
    """Run the upload batch on the job's activity and wait for its end. False when there is
    nothing to send (the command never ran, or no volume was declared for it)."""
    if not handle.get("ranCommand") or not will_upload(handle) or "activityId" not in handle:
        return False
    activity = handle["activityId"]
    try:
        batch = await yagna.call(
            "POST", f"{ACTIVITY}/activity/{activity}/exec", json_body=exec_body(upload_script(url))
        )
    except YagnaError as exc:
        if exc.status == 404 or exc.provider_unreachable:
            raise HandleNotFound(f"golem: activity {activity} is gone ({exc.message})") from exc
        raise Rejected(f"yagna refused the upload command: {exc.message}") from exc
    path = f"{ACTIVITY}/activity/{activity}/exec/{batch}"
    deadline = time.monotonic() + wait
    step = min(max(poll, 0.5), 5.0)
    while True:
        try:
            results = await yagna.call("GET", path, params={"timeout": step}, wait=step) or []
        except YagnaError as exc:
            if exc.status == 404 or exc.provider_unreachable:
                raise HandleNotFound(
                    f"golem: the provider left during the upload ({exc.message})"
                ) from exc
            results = []
        except Unavailable:
            results = []
        if (found := _ended(results)) is not None:
            return found
        if time.monotonic() > deadline:
            raise Rejected(f"the provider did not send the output within {wait:.0f} s")
        if not results:
            await asyncio.sleep(min(poll, 1.0))


def _ended(results: list[dict[str, Any]]) -> bool | None:
    """True once the transfer succeeded; raises Rejected for a failed command; None: not yet."""
    for result in results:
        index = int(result.get("index", -1))
        if result.get("result") == "Error":
            message = str(result.get("message") or "no message")
            if index == PACK:
                said = str(result.get("stderr") or "").strip()
                raise Rejected(
                    f"packing {OUTPUT_PATH} on the provider failed: {message}"
                    + (f" ({said[-300:]})" if said else "")
                )
            raise Rejected(f"the provider's upload failed: {message}")
        if index == SEND:
            return True
    return None
