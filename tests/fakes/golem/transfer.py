"""The fake ExeUnit's filesystem and its `transfer` command, as yagna's does them
(golemfactory/yagna @ 49e8b48, exe-unit/components/transfer/src/):

- The VM's files: the fake runs commands on the host, so each activity gets a directory that
  stands for the VM's filesystem, with the volumes its `deploy` declared made in it; a `run`
  command's arguments name those paths with the activity's directory in front (the top-level
  directory of each volume, `/cortex` for `/cortex/output`, is rewritten; nothing else is).
- `transfer` from `container:<path>` reads only under a declared host volume (container.rs
  `resolve_path`: anything else is "path not found in container"), and to `http(s)://` sends
  a PUT with the file streamed as a chunked body, no Content-Length, no Content-Type
  (http.rs `destination`: `upload_method: Method::PUT`, awc `send_stream`), user and password
  from the URL as basic auth. A 4xx answer fails the command at once; a 5xx or a failed
  connection is retried twice, after 2 s then 4 s (retry.rs `Retry::default`, `can_retry`).
- The command's result message is the error's display chain, as the ExeUnit reports it
  (exe_unit.rs: `Error::from(TransferError)` -> "Local service error: Transfer error: ...").
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

PREFIX = "Local service error: Transfer error: "
CHUNK = 64 * 1024
# The reason phrases of Rust's http crate where Python's differ.
_REASONS = {413: "Payload Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable"}


@dataclass
class VmFiles:
    """An activity's filesystem on the host, and the volumes its deploy declared."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="fake-golem-vm-")))
    # Container path -> its mount ({"host": {}}, {"storage": {...}}, {"ram": {...}}).
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def deploy(self, declared: Any) -> None:
        """The deploy command's `volumes`: a list of paths (host volumes) or path -> mount."""
        if isinstance(declared, list):
            declared = {str(path): {"host": {}} for path in declared}
        for path, mount in (declared or {}).items():
            self.volumes[str(path)] = mount if isinstance(mount, dict) else {}
            self.host_path(str(path)).mkdir(parents=True, exist_ok=True)

    def host_path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def rewrite(self, argument: str) -> str:
        """An argument of a `run` command with the volumes' top directories on the host."""
        for top in sorted({"/" + path.strip("/").split("/")[0] for path in self.volumes}):
            pattern = rf"(?<![\w.~/-]){re.escape(top)}(?=/|$|[\s'\";|&)])"
            on_host = str(self.root) + top
            argument = re.sub(pattern, lambda _, on_host=on_host: on_host, argument)
        return argument

    def resolve(self, container_path: str) -> Path:
        """The host file behind `container:<path>`, only under a host volume."""
        hosts = [p for p, mount in self.volumes.items() if "host" in mount]
        for volume in sorted(hosts, key=len, reverse=True):
            if container_path == volume or container_path.startswith(volume.rstrip("/") + "/"):
                rest = container_path[len(volume) :].lstrip("/")
                if "//" in container_path[len(volume) :]:
                    break
                return self.host_path(volume) / rest
        raise TransferFailed(f"IO error: path not found in container: {container_path}")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class TransferFailed(Exception):
    """The transfer's error, in the words of yagna's transfer Error display."""


def _status_text(code: int) -> str:
    return f"{code} {_REASONS.get(code) or HTTPStatus(code).phrase}"


async def transfer(files: VmFiles, body: dict[str, Any], retry_delays: tuple[float, ...]) -> None:
    """Run one `transfer` command; TransferFailed with yagna's words when it fails."""
    source, target = str(body.get("from", "")), str(body.get("to", ""))
    scheme = urlsplit(source).scheme
    if scheme != "container":
        raise TransferFailed(f"Unsupported scheme: {scheme}")
    path = files.resolve(posixpath.normpath(urlsplit(source).path or "/"))
    if not path.is_file():
        raise TransferFailed(
            f"IO error: No such file or directory (os error 2): {urlsplit(source).path}"
        )
    target_scheme = urlsplit(target).scheme
    if target_scheme not in ("http", "https"):
        raise TransferFailed(f"Unsupported scheme: {target_scheme}")
    delays = list(retry_delays)
    while True:
        try:
            await _put(path, target)
            return
        except _Retryable as exc:
            if not delays:
                raise TransferFailed(str(exc)) from None
            await asyncio.sleep(delays.pop(0))


class _Retryable(Exception):
    pass


async def _put(path: Path, url: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk

    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        request = client.build_request("PUT", url, content=chunks())
        for name in ("user-agent", "accept", "accept-encoding"):
            del request.headers[name]  # awc sends none of these by default
        try:
            response = await client.send(request)
        except httpx.ConnectError:
            refused = 'Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }'
            raise _Retryable(f"HTTP error: io error: {refused}") from None
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            raise _Retryable("HTTP error: io error: Kind(ConnectionReset)") from None
        except httpx.TimeoutException:
            raise _Retryable("HTTP error: timeout: response read") from None
    if response.status_code >= 500:
        raise _Retryable(f"HTTP error: server error: {_status_text(response.status_code)}")
    if response.status_code >= 400:
        raise TransferFailed(f"HTTP error: client error: {_status_text(response.status_code)}")
