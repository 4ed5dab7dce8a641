"""Golem jobs leave files in /cortex/output/; the provider itself uploads them when the job
ends (an ExeScript batch: `run` of tar, then `transfer` to the gateway's signed upload link,
as yagna does it), and `results.outputUrl` downloads them as for a local job."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app import database
from app.application import create_app
from app.outputs import links
from app.outputs.uploads import UploadLinks
from tests.engine.conftest import engine_settings, submit, wait_for
from tests.factories import API, Keys
from tests.fakes.golem import APP_KEY, RunningFake, running_fake
from tests.outputs.conftest import ACCESS_KEY, SECRET_KEY
from tests.providers.conformance.harness_golem import fast_timing
from tests.providers.golem.test_jobs import golem_job, until_released
from tests.servers import free_port, uvicorn_server


@asynccontextmanager
async def golem_gateway(
    database_url: str,
    keys: Keys,
    fake: RunningFake,
    data_dir: Path,
    *,
    public_url: str | None = "listening",
    **overrides: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(a client with a jobs key, a client with none) of a gateway listening on a loopback
    port, its public URL that port's unless said otherwise (None: not set)."""
    port = free_port()
    public = f"http://127.0.0.1:{port}" if public_url == "listening" else public_url
    settings = engine_settings(
        database_url,
        data_dir=data_dir,
        public_url=public,
        golem_api_url=fake.url,
        golem_registry_url=fake.url,
        golem_app_key=APP_KEY,
        golem_poll_interval=0.05,
        **overrides,
    )
    async with (
        uvicorn_server(create_app(settings), port) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as keyed,
        httpx.AsyncClient(base_url=url, timeout=30) as anyone,
    ):
        keyed.headers["Authorization"] = f"Bearer {await keys.create()}"
        yield keyed, anyone


@asynccontextmanager
async def fake_yagna() -> AsyncIterator[RunningFake]:
    async with running_fake(fast_timing()) as running:
        yield running


def commands(fake: RunningFake, name: str) -> list[dict[str, Any]]:
    """Every `name` command the fake daemon was sent, in any batch."""
    return [
        command[name]
        for activity in fake.yagna.activities.values()
        for batch in activity.batches.values()
        for command in batch.commands
        if name in command
    ]


def failed_transfers(fake: RunningFake) -> list[str]:
    """The messages of the transfer commands that failed, as the daemon reported them."""
    return [
        result.get("message", "")
        for activity in fake.yagna.activities.values()
        for batch in activity.batches.values()
        for result in batch.results
        if result["result"] == "Error" and "transfer" in batch.commands[result["index"]]
    ]


def events(job: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event for event in job["events"] if event["type"] == kind]


def staged(data_dir: Path) -> list[str]:
    uploads = data_dir / "artifacts" / "uploads"
    return sorted(p.name for p in uploads.iterdir()) if uploads.exists() else []


def output_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"output/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def chunked(data: bytes) -> AsyncIterator[bytes]:
    """A body without a Content-Length (sent chunked), as yagna's transfer sends one."""
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


class TestGolemOutputs:
    async def test_a_result_file_comes_back_through_the_output_url_without_a_key(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with (
            fake_yagna() as fake,
            golem_gateway(database_url, keys, fake, tmp_path) as (client, anyone),
        ):
            script = "echo 'forty-two' > /cortex/output/result.txt"
            job_id = await submit(client, golem_job(script))
            job = await wait_for(client, job_id)

            assert job["status"] == "completed", job
            [collected] = events(job, "output_collected")
            assert collected["message"] == "Collected the output: result.txt, 10 bytes."
            url = job["results"]["outputUrl"]
            assert url.startswith(f"{client.base_url}{API}/jobs/{job_id}/output?expires=")
            response = await anyone.get(url)
            assert response.status_code == 200, response.text
            assert response.content == b"forty-two\n"
            assert 'filename="result.txt"' in response.headers["content-disposition"]

            # What the provider was asked: a host volume at the directory, then tar + PUT.
            [deploy] = commands(fake, "deploy")
            assert deploy["volumes"] == {"/cortex/output": {"host": {}}}
            [transfer] = commands(fake, "transfer")
            assert transfer["from"] == "container:/cortex/output/.cortex-output.tar"
            assert transfer["to"].startswith(
                f"{client.base_url}{API}/jobs/{job_id}/output-upload?expires="
            )
            # The staged upload is gone once kept; the activity is released as before.
            assert staged(tmp_path) == []
            await until_released(fake, job_id)

    async def test_the_same_with_the_artifact_store_in_s3(
        self, database_url: str, keys: Keys, tmp_path: Path, bucket: str
    ) -> None:
        store = {
            "artifacts_url": bucket,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        async with (
            fake_yagna() as fake,
            golem_gateway(database_url, keys, fake, tmp_path, **store) as (client, anyone),
        ):
            script = "mkdir -p /cortex/output/logs && echo a > /cortex/output/logs/a.txt"
            script += " && echo b > /cortex/output/b.txt; exit 3"
            job = await wait_for(client, await submit(client, golem_job(script)))

            # A failed job's output is collected too (it often tells why it failed).
            assert (job["status"], job["results"]["exitCode"]) == ("failed", 3)
            [collected] = events(job, "output_collected")
            assert collected["message"].startswith("Collected the output: 2 files as a tar.gz")
            response = await anyone.get(job["results"]["outputUrl"])
            assert response.status_code == 200, response.text
            with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
                found = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
            assert found == {"b.txt": b"b\n", "logs/a.txt": b"a\n"}

    async def test_an_output_over_the_limit_is_refused_at_upload_and_nothing_is_kept(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with (
            fake_yagna() as fake,
            golem_gateway(database_url, keys, fake, tmp_path, output_max_bytes=1000) as (
                client,
                _,
            ),
        ):
            # 16 MB: past the limit and the tar headers allowed for 10,000 files besides.
            script = "head -c 16000000 /dev/zero > /cortex/output/big.bin; echo done"
            job_id = await submit(client, golem_job(script))
            job = await wait_for(client, job_id)

            assert job["status"] == "completed"
            [too_large] = events(job, "output_too_large")
            assert "limit of 1000 bytes" in too_large["message"]
            # The gateway refused the upload itself, and the provider said so in its words.
            assert failed_transfers(fake) == [
                "Local service error: Transfer error: HTTP error: client error: "
                "413 Payload Too Large"
            ]
            assert job["results"]["outputUrl"] is None
            missing = await client.get(f"{API}/jobs/{job_id}/output")
            assert missing.json()["error"]["code"] == "OUTPUT_NOT_FOUND"
            assert staged(tmp_path) == []

    async def test_without_a_public_url_nothing_is_attempted(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with (
            fake_yagna() as fake,
            golem_gateway(database_url, keys, fake, tmp_path, public_url=None) as (client, _),
        ):
            job = await wait_for(client, await submit(client, golem_job("echo fine")))

            assert job["status"] == "completed"
            assert [e for e in job["events"] if e["type"].startswith("output_")] == []
            assert "volumes" not in commands(fake, "deploy")[0]
            assert commands(fake, "transfer") == []

    async def test_an_upload_that_fails_leaves_the_job_as_it_ended_and_says_why(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        nobody = f"http://127.0.0.1:{free_port()}"  # a public URL nothing answers at
        async with (
            fake_yagna() as fake,
            golem_gateway(database_url, keys, fake, tmp_path, public_url=nobody) as (client, _),
        ):
            script = "echo x > /cortex/output/x.txt"
            job = await wait_for(client, await submit(client, golem_job(script)))

            assert job["status"] == "completed"
            [event] = events(job, "output_not_collected")
            assert "ConnectionRefused" in event["message"], event
            assert job["results"]["outputUrl"] is None


class TestUploadEndpoint:
    async def test_only_a_valid_upload_link_of_a_running_job_takes_one_upload(
        self, database_url: str, keys: Keys, tmp_path: Path, db: AsyncEngine
    ) -> None:
        async with (
            fake_yagna() as fake,
            golem_gateway(database_url, keys, fake, tmp_path) as (client, anyone),
        ):
            job_id = await submit(client, golem_job("sleep 4"))
            await wait_for(client, job_id, {"running"})
            good = await UploadLinks(db, str(client.base_url)).url(job_id)
            path, query = urlsplit(good).path, parse_qs(urlsplit(good).query)
            body = output_tar({"hello.txt": b"hello"})

            missing = await anyone.put(path, content=body)
            assert missing.status_code == 400
            assert {d["field"] for d in missing.json()["error"]["details"]} == {
                "expires",
                "signature",
            }
            expires = query["expires"][0]
            tampered = await anyone.put(
                path, params={"expires": expires, "signature": "x" * 43}, content=body
            )
            assert tampered.status_code == 403
            assert tampered.json() == {
                "success": False,
                "error": {
                    "code": "OUTPUT_LINK_INVALID",
                    "message": "This upload link is invalid or has expired.",
                    "details": [],
                },
            }
            async with database.reading(db) as connection:
                key = await links.load_key(connection)
            download_link = parse_qs(links.signed_query(key, job_id, 60))
            as_download = await anyone.put(
                path, params={k: v[0] for k, v in download_link.items()}, content=body
            )
            assert as_download.status_code == 403

            accepted = await anyone.put(good, content=chunked(body))  # as yagna sends it
            assert accepted.status_code == 201, accepted.text
            assert accepted.json()["data"] == {"jobId": job_id, "sizeBytes": len(body)}
            again = await anyone.put(good, content=body)
            assert again.status_code == 409
            assert again.json()["error"]["code"] == "OUTPUT_ALREADY_UPLOADED"

            # The engine keeps what arrived (it does not ask the provider again).
            job = await wait_for(client, job_id)
            assert commands(fake, "transfer") == []
            download = await anyone.get(job["results"]["outputUrl"])
            assert download.content == b"hello"
            late = await anyone.put(good, content=body)
            assert late.status_code == 409
            assert late.json()["error"]["code"] == "JOB_ALREADY_FINISHED"
