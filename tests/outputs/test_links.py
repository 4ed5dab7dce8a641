"""Signed output links: one job, until their expiry, and nothing else."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import pytest

from app.outputs import links

KEY = b"k" * 32


def signed(job_id: str, ttl: float, key: bytes = KEY) -> tuple[str, str]:
    query = parse_qs(links.signed_query(key, job_id, ttl))
    return query["expires"][0], query["signature"][0]


class TestVerify:
    def test_a_fresh_link_is_valid_for_its_job(self) -> None:
        assert links.verify(KEY, "job_a", *signed("job_a", 60))

    @pytest.mark.parametrize(
        "case", ["other job", "other key", "expired", "later expiry", "not a number", "huge"]
    )
    def test_anything_else_is_refused(self, case: str) -> None:
        expires, signature = signed("job_a", 60)
        job_id, key = "job_a", KEY
        if case == "other job":
            job_id = "job_b"
        elif case == "other key":
            key = b"x" * 32
        elif case == "expired":
            expires, signature = signed("job_a", -1)
        elif case == "later expiry":
            expires = str(int(expires) + 3600)
        elif case == "not a number":
            expires = "1e99"
        elif case == "huge":
            expires = "9" * 40
        assert not links.verify(key, job_id, expires, signature)

    def test_an_upload_link_and_a_download_link_do_not_stand_in_for_each_other(self) -> None:
        query = parse_qs(links.signed_query(KEY, "job_a", 60, purpose=links.UPLOAD))
        upload = query["expires"][0], query["signature"][0]
        assert links.verify(KEY, "job_a", *upload, purpose=links.UPLOAD)
        assert not links.verify(KEY, "job_a", *upload)
        assert not links.verify(KEY, "job_a", *signed("job_a", 60), purpose=links.UPLOAD)

    def test_missing_parts_are_refused(self) -> None:
        expires, signature = signed("job_a", 60)
        assert not links.verify(KEY, "job_a", None, signature)
        assert not links.verify(KEY, "job_a", expires, None)
        assert not links.verify(KEY, "job_a", expires, "é" * 43)  # not ASCII: refused, not a 500


class TestOutputUrlFor:
    def test_a_collected_output_gets_a_signed_link_under_the_base(self) -> None:
        url = links.output_url_for(
            "job_a",
            collected=True,
            declared="https://elsewhere/x",
            base_url="https://gw.example.com/api/plugin-core/",
            key=KEY,
            ttl_seconds=60,
        )
        assert url is not None
        assert url.startswith("https://gw.example.com/api/plugin-core/jobs/job_a/output?expires=")
        expires = int(parse_qs(url.split("?", 1)[1])["expires"][0])
        assert time.time() + 55 < expires <= time.time() + 61

    def test_without_one_the_declared_url_or_none(self) -> None:
        common = {"collected": False, "base_url": "https://gw", "key": KEY, "ttl_seconds": 60}
        assert links.output_url_for("job_a", declared="https://s3/x", **common) == "https://s3/x"
        assert links.output_url_for("job_a", declared=None, **common) is None
