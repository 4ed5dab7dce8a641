"""Local jobs leave files in /cortex/output/; the gateway collects them when the job ends, and
`results.outputUrl` downloads them without an API key until it expires."""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from app.application import create_app
from app.outputs.store import open_store
from tests.engine.conftest import busybox, engine_settings, removed, submit, wait_for
from tests.factories import API, Keys
from tests.outputs.conftest import ACCESS_KEY, SECRET_KEY
from tests.servers import lifespan_app


@asynccontextmanager
async def gateway(
    database_url: str, keys: Keys, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(a client with a jobs key, a client with no key at all) of one gateway."""
    settings = engine_settings(database_url, data_dir=data_dir, **overrides)
    async with lifespan_app(create_app(settings)) as app:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as keyed,
            httpx.AsyncClient(transport=transport, base_url="http://gateway") as anonymous,
        ):
            keyed.headers["Authorization"] = f"Bearer {await keys.create()}"
            yield keyed, anonymous


async def finished(client: httpx.AsyncClient, script: str) -> dict[str, Any]:
    job = await wait_for(client, await submit(client, busybox(script)))
    assert await removed(job["id"]), "the container is removed once its output is collected"
    return job


def event_types(job: dict[str, Any]) -> list[str]:
    return [event["type"] for event in job["events"]]


class TestOutputUrl:
    async def test_a_file_downloads_as_itself_without_a_key_until_the_link_expires(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with gateway(database_url, keys, tmp_path, output_url_ttl=2) as (client, anyone):
            job = await finished(client, "echo 'forty-two' > /cortex/output/result.txt")

            assert job["status"] == "completed"
            assert "output_collected" in event_types(job)
            url = job["results"]["outputUrl"]
            assert url.startswith(f"http://gateway{API}/jobs/{job['id']}/output?expires=")
            response = await anyone.get(url)
            assert response.status_code == 200, response.text
            assert response.content == b"forty-two\n"
            assert response.headers["content-type"].startswith("text/plain")
            assert 'filename="result.txt"' in response.headers["content-disposition"]
            assert response.headers["content-disposition"].startswith("attachment")

            await asyncio.sleep(3.2)
            expired = await anyone.get(url)
            assert expired.status_code == 403
            assert expired.json()["error"]["code"] == "OUTPUT_LINK_INVALID"
            # Reading the job again gives a fresh link.
            fresh = (await client.get(f"{API}/jobs/{job['id']}")).json()["data"]
            assert (await anyone.get(fresh["results"]["outputUrl"])).status_code == 200

    async def test_a_tampered_link_answers_403(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with gateway(database_url, keys, tmp_path) as (client, anyone):
            job = await finished(client, "echo x > /cortex/output/a.txt")
            url = job["results"]["outputUrl"]
            other = await finished(client, "echo y > /cortex/output/b.txt")

            for bad in (
                url[:-2] + ("AA" if not url.endswith("AA") else "BB"),
                url.replace(job["id"], other["id"]),
                url.split("&signature=")[0],
            ):
                response = await anyone.get(bad)
                assert response.status_code == 403, bad
                assert response.json()["error"]["code"] == "OUTPUT_LINK_INVALID"

    async def test_the_link_names_the_public_url_when_one_is_set(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        public = "https://gw.example.com"
        async with gateway(database_url, keys, tmp_path, public_url=public) as (client, _):
            job = await finished(client, "echo x > /cortex/output/a.txt")
            assert job["results"]["outputUrl"].startswith(f"{public}{API}/jobs/{job['id']}/output?")


class TestGetOutput:
    async def test_several_files_come_back_as_a_tar_gz(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        script = (
            "cd /cortex/output && echo one > one.txt && mkdir -p deep/er"
            " && echo two > deep/er/two.txt && ln -s one.txt link"
        )
        async with gateway(database_url, keys, tmp_path) as (client, _):
            job = await finished(client, script)
            response = await client.get(f"{API}/jobs/{job['id']}/output")

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/gzip"
        assert f'filename="{job["id"]}-output.tar.gz"' in response.headers["content-disposition"]
        with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
            files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
            names = tar.getnames()
        assert files == {"one.txt": b"one\n", "deep/er/two.txt": b"two\n"}
        assert "link" not in names, "links are not collected"
        assert all(not name.startswith(("/", "output")) for name in names)

    async def test_a_failed_job_keeps_its_partial_output(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with gateway(database_url, keys, tmp_path) as (client, anyone):
            job = await finished(client, "echo partial > /cortex/output/part.txt; exit 3")
            assert job["status"] == "failed"
            response = await anyone.get(job["results"]["outputUrl"])
        assert response.content == b"partial\n"

    async def test_a_job_stopped_past_its_duration_keeps_what_it_wrote(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        script = "echo halfway > /cortex/output/progress.txt; sleep 60"
        async with gateway(database_url, keys, tmp_path) as (client, anyone):
            job = await wait_for(client, await submit(client, busybox(script, duration=2)))
            response = await anyone.get(job["results"]["outputUrl"])
        assert (job["status"], job["results"]["reason"]) == ("failed", "timeout")
        assert response.content == b"halfway\n"

    async def test_output_over_the_limit_keeps_nothing_and_says_so(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        script = "head -c 5000 /dev/zero > /cortex/output/big.bin"
        async with gateway(database_url, keys, tmp_path, output_max_bytes=4096) as (client, _):
            job = await finished(client, script)
            response = await client.get(f"{API}/jobs/{job['id']}/output")

        assert job["status"] == "completed"
        assert job["results"]["outputUrl"] is None
        [event] = [e for e in job["events"] if e["type"] == "output_too_large"]
        assert "4096 bytes" in event["message"]
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "OUTPUT_NOT_FOUND"
        assert not list((tmp_path / "artifacts").rglob("*job_*"))

    async def test_an_unreachable_store_does_not_hold_the_job_back(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        nowhere = {
            "artifacts_url": "s3://gone/x?endpoint=http://127.0.0.1:9",
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        async with gateway(database_url, keys, tmp_path, **nowhere) as (client, _):
            job = await finished(client, "echo x > /cortex/output/a.txt")
        assert job["status"] == "completed"
        assert job["results"]["outputUrl"] is None
        [event] = [e for e in job["events"] if e["type"] == "output_not_collected"]
        assert "artifact store" in event["message"]

    async def test_a_job_without_output_answers_404(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with gateway(database_url, keys, tmp_path) as (client, _):
            job = await finished(client, "echo nothing to keep")
            response = await client.get(f"{API}/jobs/{job['id']}/output")
        assert job["results"]["outputUrl"] is None
        assert "output_collected" not in event_types(job)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "OUTPUT_NOT_FOUND"

    async def test_a_volume_mounted_at_the_output_directory_is_collected(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        # A volume's files are not in the container's own layer, where the gateway first
        # looks for a sign of output: it must read the directory itself then.
        spec = busybox(
            "echo kept > /cortex/output/result.txt",
            volumes=[{"name": "results", "mountPath": "/cortex/output"}],
        )
        async with gateway(database_url, keys, tmp_path) as (client, _):
            job = await wait_for(client, await submit(client, spec))
            response = await client.get(f"{API}/jobs/{job['id']}/output")
        assert job["status"] == "completed", job["events"]
        assert response.status_code == 200, response.text
        assert response.content == b"kept\n"

    async def test_an_emptied_output_directory_is_no_output(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with gateway(database_url, keys, tmp_path) as (client, _):
            job = await finished(client, "echo x > /cortex/output/tmp && rm /cortex/output/tmp")
            response = await client.get(f"{API}/jobs/{job['id']}/output")
        assert job["status"] == "completed"
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "OUTPUT_NOT_FOUND"

    async def test_another_accounts_output_is_invisible(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with gateway(database_url, keys, tmp_path) as (client, anyone):
            job = await finished(client, "echo mine > /cortex/output/a.txt")
            other_key = await keys.create(account="beta")
            response = await anyone.get(
                f"{API}/jobs/{job['id']}/output", headers={"Authorization": f"Bearer {other_key}"}
            )
            keyless = await anyone.get(f"{API}/jobs/{job['id']}/output")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "JOB_NOT_FOUND"
        assert keyless.status_code == 401

    async def test_the_output_survives_a_restart(
        self, database_url: str, keys: Keys, tmp_path: Path
    ) -> None:
        async with gateway(database_url, keys, tmp_path) as (client, _):
            job = await finished(client, "echo kept > /cortex/output/kept.txt")
        async with gateway(database_url, keys, tmp_path) as (client, anyone):
            # A link issued before the restart still works: the key is in the database.
            before = await anyone.get(job["results"]["outputUrl"])
            again = (await client.get(f"{API}/jobs/{job['id']}")).json()["data"]
            after = await anyone.get(again["results"]["outputUrl"])
        assert before.content == after.content == b"kept\n"


class TestS3Store:
    async def test_a_file_goes_to_the_bucket_and_downloads_from_there(
        self, database_url: str, keys: Keys, tmp_path: Path, bucket: str
    ) -> None:
        settings = {
            "artifacts_url": bucket,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "output_url_ttl": 2,
        }
        async with gateway(database_url, keys, tmp_path, **settings) as (client, anyone):
            job = await finished(client, "echo 'in a bucket' > /cortex/output/result.txt")
            response = await anyone.get(job["results"]["outputUrl"])
            await asyncio.sleep(3.2)
            expired = await anyone.get(job["results"]["outputUrl"])

        assert response.status_code == 200
        assert response.content == b"in a bucket\n"
        assert expired.status_code == 403
        assert not (tmp_path / "artifacts").exists(), "nothing is kept in the data directory"
        store = open_store(bucket, tmp_path, ACCESS_KEY, SECRET_KEY)
        try:
            download = await store.open(f"outputs/{job['id']}")
            assert b"".join([chunk async for chunk in download.chunks]) == b"in a bucket\n"
        finally:
            await store.aclose()
