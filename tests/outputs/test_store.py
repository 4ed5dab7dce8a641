"""The artifact store's two backends behave alike: a directory, and an S3-compatible bucket
(moto's server, over HTTP with our Signature V4)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pydantic
import pytest

from app.outputs import sigv4
from app.outputs.s3 import BucketUrl
from app.outputs.store import ArtifactError, ArtifactMissing, ArtifactStore, open_store
from app.settings import Settings
from tests.outputs.conftest import ACCESS_KEY, SECRET_KEY


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _read(store: ArtifactStore, key: str) -> bytes:
    download = await store.open(key)
    try:
        return b"".join([chunk async for chunk in download.chunks])
    finally:
        await download.aclose()


@pytest.fixture(params=["directory", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ArtifactStore]:
    url = request.getfixturevalue("bucket") if request.param == "s3" else None
    opened = open_store(url, tmp_path, ACCESS_KEY, SECRET_KEY)
    yield opened
    await opened.aclose()


class TestArtifactStore:
    async def test_what_is_put_reads_back_the_same(self, store: ArtifactStore) -> None:
        body = os.urandom(300_000)
        await store.put("outputs/job_1", _chunks(body[:1000], body[1000:]), len(body))

        download = await store.open("outputs/job_1")
        assert download.size == len(body)
        assert b"".join([c async for c in download.chunks]) == body

    async def test_a_put_replaces_the_object(self, store: ArtifactStore) -> None:
        await store.put("outputs/job_2", _chunks(b"first"), 5)
        await store.put("outputs/job_2", _chunks(b"second"), 6)
        assert await _read(store, "outputs/job_2") == b"second"

    async def test_a_missing_object_raises_missing(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactMissing):
            await store.open("outputs/nothing")

    async def test_delete_removes_it_and_is_idempotent(self, store: ArtifactStore) -> None:
        await store.put("outputs/job_3", _chunks(b"x"), 1)
        await store.delete("outputs/job_3")
        await store.delete("outputs/job_3")
        with pytest.raises(ArtifactMissing):
            await store.open("outputs/job_3")

    async def test_a_size_over_the_limit_is_refused(self, store: ArtifactStore) -> None:
        with pytest.raises(ArtifactError):
            await store.put("outputs/job_4", _chunks(b""), 6 * 1024**3)

    async def test_a_key_outside_the_store_is_refused(self, store: ArtifactStore) -> None:
        with pytest.raises(ValueError):
            await store.put("../escape", _chunks(b"x"), 1)


class TestDirectoryStore:
    async def test_a_stream_shorter_than_announced_leaves_nothing(self, tmp_path: Path) -> None:
        store = open_store(None, tmp_path)
        with pytest.raises(ArtifactError):
            await store.put("outputs/job_5", _chunks(b"abc"), 10)
        with pytest.raises(ArtifactMissing):
            await store.open("outputs/job_5")
        assert list((tmp_path / "artifacts" / "outputs").iterdir()) == []


class TestS3Store:
    async def test_objects_live_under_the_prefix_in_the_bucket(self, bucket: str) -> None:
        store = open_store(bucket, Path("/nonexistent"), ACCESS_KEY, SECRET_KEY)
        await store.put("outputs/job_6", _chunks(b"hello"), 5)
        await store.aclose()
        url = BucketUrl.parse(bucket)
        async with httpx.AsyncClient() as client:
            listing = await client.get(f"{url.endpoint}/{url.bucket}", params={"list-type": "2"})
        assert "<Key>outputs/outputs/job_6</Key>" in listing.text

    async def test_an_unreachable_endpoint_raises_artifact_error(self) -> None:
        url = "s3://b/p?endpoint=http://127.0.0.1:9&region=us-east-1"
        store = open_store(url, Path("/nonexistent"), ACCESS_KEY, SECRET_KEY)
        with pytest.raises(ArtifactError):
            await store.put("outputs/job_7", _chunks(b"x"), 1)
        await store.aclose()

    @pytest.mark.parametrize(
        "url",
        ["http://bucket/x", "s3:///prefix", "s3://b/p?endpoint=ftp://x", "s3://b/p?colour=red"],
    )
    def test_a_malformed_url_is_refused(self, url: str) -> None:
        with pytest.raises(ValueError):
            BucketUrl.parse(url)

    def test_credentials_are_required_for_a_bucket(self) -> None:
        with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
            open_store("s3://b/p", Path("/nonexistent"))


class TestSignatureV4:
    def test_matches_the_aws_documentation_example(self) -> None:
        # "GET Object" in Signature Calculations for the Authorization Header (AWS S3 docs).
        credentials = sigv4.Credentials(
            "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1"
        )
        header = sigv4.authorization(
            credentials,
            "GET",
            "/test.txt",
            {},
            {
                "Host": "examplebucket.s3.amazonaws.com",
                "Range": "bytes=0-9",
                "x-amz-content-sha256": sigv4.EMPTY_SHA256,
                "x-amz-date": "20130524T000000Z",
            },
            sigv4.EMPTY_SHA256,
            datetime(2013, 5, 24, tzinfo=UTC),
        )
        assert header == (
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            " SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            " Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )

    def test_matches_botocore_for_a_put_with_a_query(self) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.config import Config
        from botocore.credentials import Credentials

        now = datetime(2026, 12, 5, 2, 30, 1, tzinfo=UTC)
        headers = {
            "host": "127.0.0.1:9000",
            "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
            "x-amz-content-sha256": sigv4.UNSIGNED_PAYLOAD,
            "content-length": "5",
        }
        ours = sigv4.authorization(
            sigv4.Credentials("AKID", "secret/key+x", "eu-west-3"),
            "PUT",
            "/bucket/outputs/job%20a.txt",
            {"partNumber": "1", "uploadId": "a b"},
            headers,
            sigv4.UNSIGNED_PAYLOAD,
            now,
        )
        request = AWSRequest(
            "PUT",
            # https: botocore then leaves the payload unsigned, as we do.
            "https://127.0.0.1:9000/bucket/outputs/job%20a.txt?partNumber=1&uploadId=a%20b",
            headers=dict(headers),
            data=b"hello",
        )
        request.context["timestamp"] = headers["x-amz-date"]
        request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        auth = S3SigV4Auth(Credentials("AKID", "secret/key+x"), "s3", "eu-west-3")
        # add_auth() would take the clock's time: sign with `now`, step by step, as it does.
        auth._modify_request_before_signing(request)
        canonical = auth.canonical_request(request)
        signature = auth.signature(auth.string_to_sign(request, canonical), request)
        assert ours.endswith(f"Signature={signature}")
        assert "SignedHeaders=content-length;host;x-amz-content-sha256;x-amz-date," in ours


class TestSettings:
    @pytest.mark.parametrize(
        "values",
        [
            {"artifacts_url": "http://bucket/x"},
            {"artifacts_url": "s3://b/p?endpoint=ftp://x", "aws_access_key_id": "a",
             "aws_secret_access_key": "b"},
            {"artifacts_url": "s3://b/p"},
        ],
    )  # fmt: skip
    def test_a_bad_store_stops_the_gateway_at_start(self, values: dict[str, str]) -> None:
        with pytest.raises(pydantic.ValidationError):
            Settings(**values)

    def test_a_bucket_with_credentials_is_accepted(self) -> None:
        settings = Settings(
            artifacts_url="s3://b/p?region=eu-west-1",
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )
        assert settings.artifacts_url == "s3://b/p?region=eu-west-1"
