"""What confines a local job, seen from inside its container on the real runtime: no
capabilities, no privilege gain, a process limit, no way to the host's services, and images
only from the registries the operator allows."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from providers.errors import ImagePullFailed
from providers.local import LocalProvider
from providers.types import PortSpec, WorkloadSpec, WorkloadState

API = "http://docker/v1.41"


def runtime() -> httpx.AsyncClient:
    socket = os.environ["DOCKER_HOST"].removeprefix("unix://")
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=socket), timeout=30)


def shell(script: str, **fields: object) -> WorkloadSpec:
    return WorkloadSpec(
        job_id=f"job_{secrets.token_hex(6)}",
        image=str(fields.pop("image", "docker.io/library/busybox:latest")),
        cpu_millicores=100,
        memory_bytes=32 * 2**20,
        storage_bytes=0,
        duration_seconds=60,
        command=("sh", "-c", script),
        **fields,  # type: ignore[arg-type]
    )


async def run(provider: LocalProvider, spec: WorkloadSpec) -> str:
    """The job's output once it has exited (the container is removed afterwards)."""
    handle = await provider.submit(spec)
    try:
        deadline = time.monotonic() + 30
        while (await provider.status(handle)).state is not WorkloadState.EXITED:
            assert time.monotonic() < deadline, "the job did not exit"
            await provider.watch(handle, 0.5)
        lines, cursor = [], None
        while True:
            batch = await provider.logs(handle, cursor)
            lines += [line.line for line in batch.lines]
            cursor = batch.cursor
            if batch.complete:
                return "\n".join(lines)
    finally:
        await provider.release(handle)


@pytest.fixture
async def local() -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(docker_host=os.environ["DOCKER_HOST"], pids_limit=100)
    try:
        yield provider
    finally:
        await provider.aclose()


async def test_a_job_has_no_capabilities_no_privilege_gain_and_a_process_limit(
    local: LocalProvider,
) -> None:
    output = await run(
        local,
        shell("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /sys/fs/cgroup/pids/pids.max"),
    )

    assert "CapEff:\t0000000000000000" in output
    assert "NoNewPrivs:\t1" in output
    assert output.splitlines()[-1] == "100"


async def gateway_of(network: str) -> str:
    async with runtime() as client:
        info = (await client.get(f"{API}/networks/{network}")).json()
    return str(info["IPAM"]["Config"][0]["Gateway"])


async def test_a_job_on_the_default_network_cannot_reach_the_hosts_services() -> None:
    # A service on the host listening on every address, as the gateway's own port might.
    token = secrets.token_hex(8)

    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{token}\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "0.0.0.0", 0)
    port = server.sockets[0].getsockname()[1]
    # The busybox image's wget crashes here; nc prints whatever the server says.
    probe = "for ip in {ips}; do nc -w 2 $ip {port} </dev/null; echo tried $ip; done"
    defaults = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    bridged = LocalProvider(docker_host=os.environ["DOCKER_HOST"], network="bridge")
    try:
        # For comparison: on the runtime's own bridge, the host is its gateway and answers.
        host_address = await gateway_of("bridge")
        reached = await run(bridged, shell(probe.format(ips=host_address, port=port)))
        assert token in reached

        await run(defaults, shell("true"))  # the first job creates the default network
        # podman's internal network has no gateway; where one has, it is tried too.
        addresses = f"{await gateway_of('cortex-jobs')} {host_address}".replace("<nil>", "")
        blocked = await run(defaults, shell(probe.format(ips=addresses, port=port)))
    finally:
        server.close()
        await defaults.aclose()
        await bridged.aclose()

    assert f"tried {host_address}" in blocked
    assert token not in blocked


async def test_a_job_on_no_network_has_only_loopback() -> None:
    provider = LocalProvider(docker_host=os.environ["DOCKER_HOST"], network="none")
    try:
        output = await run(provider, shell("ls /sys/class/net; echo done"))
    finally:
        await provider.aclose()

    assert output.split() == ["lo", "done"]


async def pulls_since(since: int, image: str) -> list[str]:
    async with runtime() as client:
        response = await client.get(
            f"{API}/events",
            params={
                "since": str(since),
                "until": str(int(time.time()) + 1),
                "filters": json.dumps({"type": ["image"]}),
            },
        )
    events = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return [
        event["Actor"]["Attributes"].get("name", "")
        for event in events
        if event.get("Action") == "pull" and image in event["Actor"]["Attributes"].get("name", "")
    ]


async def test_an_image_from_a_registry_not_allowed_is_refused_without_a_pull() -> None:
    provider = LocalProvider(
        docker_host=os.environ["DOCKER_HOST"], allowed_registries="ghcr.io, quay.io"
    )
    image = f"docker.io/library/cortex-refused-{secrets.token_hex(4)}:1"
    spec = shell("true", image=image)
    since = int(time.time()) - 1
    try:
        # At submission: admission asks check() before anything is created.
        (refusal,) = provider.check(spec)
        assert refusal.field == "image"
        assert refusal.message.startswith("image could not be pulled")
        # Admitted before the list changed: the submit fails the same way, still no pull.
        with pytest.raises(ImagePullFailed) as refused:
            await provider.submit(spec)
        assert str(refused.value) == f"image could not be pulled: {image}"
        assert provider.check(shell("true", image="ghcr.io/someone/tool:2")) == []
    finally:
        await provider.aclose()

    assert await pulls_since(since, image.split("/")[-1]) == []


async def test_a_failed_pull_tells_the_tenant_nothing_of_the_runtimes_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = LocalProvider(docker_host=os.environ["DOCKER_HOST"])
    spec = shell("true", image=f"registry.invalid/cortex-{secrets.token_hex(4)}:1")
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(ImagePullFailed) as failed:
            await provider.submit(spec)
    finally:
        await provider.aclose()

    assert str(failed.value) == f"image could not be pulled: {spec.image}"
    # The operator's log keeps what the runtime said (here: the registry's lookup failing).
    assert any(
        spec.job_id in r.getMessage() and "registry.invalid" in r.getMessage()
        for r in caplog.records
    )


async def test_a_job_exposing_a_port_is_still_published(local: LocalProvider) -> None:
    spec = shell(
        "echo served > /tmp/index.html && httpd -f -p 80 -h /tmp",
        ports=(PortSpec(80, expose=True),),
    )
    handle = await local.submit(spec)
    try:
        deadline = time.monotonic() + 30
        while not (status := await local.status(handle)).endpoints:
            assert time.monotonic() < deadline, f"no endpoint: {status}"
            await local.watch(handle, 0.5)
        async with httpx.AsyncClient() as client:
            for _ in range(50):
                try:
                    page = await client.get(status.endpoints[0].url + "/index.html", timeout=2)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        assert page.text == "served\n"
    finally:
        await local.release(handle)
