"""GET /jobs: filters, sorting, page numbers and cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import API, Keys, seed_jobs, submit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def get_all(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """Every job, following nextCursor from the first page."""
    jobs: list[dict[str, Any]] = []
    response = await client.get(f"{API}/jobs", params=params)
    seen_pages = []
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        jobs += body["data"]
        seen_pages.append(body["meta"]["pagination"]["page"])
        cursor = body["meta"]["pagination"]["nextCursor"]
        if cursor is None:
            break
        following = {k: v for k, v in params.items() if k != "page"} | {"cursor": cursor}
        response = await client.get(f"{API}/jobs", params=following)
    assert seen_pages == list(range(seen_pages[0], seen_pages[0] + len(seen_pages)))
    return jobs


@pytest.fixture
async def mixed(client: httpx.AsyncClient, db: AsyncEngine) -> list[str]:
    """30 jobs of account alpha: three providers, several states, timestamp ties."""
    rows = []
    for i in range(30):
        status = ["pending", "running", "completed", "failed", "cancelled"][i % 5]
        rows.append(
            {
                "created_at": at(i // 3),  # three jobs per minute: ties on createdAt
                "provider": ["local", "akash", "golem"][i % 3],
                "status": status,
                "started_at": at(100 + i % 4) if status != "pending" else None,
                "ended_at": at(200 + i) if status in ("completed", "failed", "cancelled") else None,
            }
        )
    return await seed_jobs(db, "alpha", rows)


class TestListJobs:
    async def test_newest_first_with_pagination_meta(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        response = await client.get(f"{API}/jobs")

        assert response.status_code == 200
        body = response.json()
        assert body["success"] is True
        assert len(body["data"]) == 20
        created = [job["createdAt"] for job in body["data"]]
        assert created == sorted(created, reverse=True)
        pagination = body["meta"]["pagination"]
        assert {k: pagination[k] for k in ("total", "page", "limit", "pages")} == {
            "total": 30,
            "page": 1,
            "limit": 20,
            "pages": 2,
        }
        assert pagination["nextCursor"]
        assert "config" not in body["data"][0] and "events" not in body["data"][0]

    async def test_pages_cover_every_job_once(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        pages = [
            (await client.get(f"{API}/jobs", params={"limit": 7, "page": page})).json()
            for page in range(1, 6)
        ]
        ids = [job["id"] for page in pages for job in page["data"]]
        assert sorted(ids) == sorted(mixed)
        assert [len(page["data"]) for page in pages] == [7, 7, 7, 7, 2]
        assert pages[4]["meta"]["pagination"]["nextCursor"] is None
        assert all(page["meta"]["pagination"]["pages"] == 5 for page in pages)

    async def test_page_past_the_end_is_empty(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        body = (await client.get(f"{API}/jobs", params={"page": 9})).json()
        assert body["data"] == []
        assert body["meta"]["pagination"]["total"] == 30
        assert body["meta"]["pagination"]["nextCursor"] is None

    async def test_empty_account(self, client: httpx.AsyncClient) -> None:
        body = (await client.get(f"{API}/jobs")).json()
        assert body["data"] == []
        assert body["meta"]["pagination"] == {
            "total": 0,
            "page": 1,
            "limit": 20,
            "pages": 0,
            "nextCursor": None,
        }

    @pytest.mark.parametrize("sort", ["createdAt", "startedAt", "endedAt", "status", "provider"])
    @pytest.mark.parametrize("direction", ["asc", "desc"])
    async def test_cursor_walk_matches_the_sort_exactly(
        self, client: httpx.AsyncClient, mixed: list[str], sort: str, direction: str
    ) -> None:
        walked = await get_all(client, sort=f"{sort}:{direction}", limit=4)

        assert sorted(job["id"] for job in walked) == sorted(mixed)

        # NULLs sort above every value, as in Postgres: last ascending, first descending.
        def key(job: dict[str, Any]) -> tuple[Any, ...]:
            value = job[sort]
            return (value is None, value or "", job["createdAt"], job["id"])

        assert walked == sorted(walked, key=key, reverse=direction == "desc")

    async def test_cursor_pages_report_their_page_number(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        first = (await client.get(f"{API}/jobs", params={"limit": 10})).json()
        second = (
            await client.get(
                f"{API}/jobs",
                params={"limit": 10, "cursor": first["meta"]["pagination"]["nextCursor"]},
            )
        ).json()
        by_page = (await client.get(f"{API}/jobs", params={"limit": 10, "page": 2})).json()
        assert second["meta"]["pagination"]["page"] == 2
        assert second["data"] == by_page["data"]

    async def test_a_job_created_while_paging_does_not_shift_the_cursor(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        first = (await client.get(f"{API}/jobs", params={"limit": 10})).json()
        await submit(client)
        second = (
            await client.get(
                f"{API}/jobs",
                params={"limit": 10, "cursor": first["meta"]["pagination"]["nextCursor"]},
            )
        ).json()
        assert not {j["id"] for j in first["data"]} & {j["id"] for j in second["data"]}

    async def test_filters_by_status_and_provider(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        running = await get_all(client, status="running")
        assert {job["status"] for job in running} == {"running"}
        assert len(running) == 6

        several = (await client.get(f"{API}/jobs", params={"status": "failed,cancelled"})).json()
        assert {job["status"] for job in several["data"]} == {"failed", "cancelled"}
        assert several["meta"]["pagination"]["total"] == 12

        akash_running = (
            await client.get(f"{API}/jobs", params={"provider": "akash", "status": "running"})
        ).json()
        assert all(
            job["provider"] == "akash" and job["status"] == "running"
            for job in akash_running["data"]
        )
        assert akash_running["meta"]["pagination"]["total"] == len(akash_running["data"]) == 2

    async def test_filters_by_creation_time(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        params = {"from": at(2).isoformat(), "to": "2026-01-01T00:05:00Z"}
        body = (await client.get(f"{API}/jobs", params=params)).json()
        created = {job["createdAt"] for job in body["data"]}
        assert created == {at(m).strftime("%Y-%m-%dT%H:%M:%SZ") for m in (2, 3, 4)}
        assert body["meta"]["pagination"]["total"] == 9

    async def test_other_accounts_jobs_are_invisible(
        self,
        client: httpx.AsyncClient,
        app_client: httpx.AsyncClient,
        keys: Keys,
        mixed: list[str],
    ) -> None:
        other = {"Authorization": f"Bearer {await keys.create(account='beta')}"}
        body = (await app_client.get(f"{API}/jobs", headers=other)).json()
        assert body["data"] == []
        assert body["meta"]["pagination"]["total"] == 0

    async def test_totals_follow_state_changes(self, client: httpx.AsyncClient) -> None:
        jobs = [await submit(client) for _ in range(3)]
        await client.post(f"{API}/jobs/{jobs[0]['id']}/cancel")

        pending = (await client.get(f"{API}/jobs", params={"status": "pending"})).json()
        cancelled = (await client.get(f"{API}/jobs", params={"status": "cancelled"})).json()

        assert pending["meta"]["pagination"]["total"] == 2
        assert cancelled["meta"]["pagination"]["total"] == 1

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": "0"}, "limit"),
            ({"limit": "101"}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"page": "0"}, "page"),
            ({"page": "-1"}, "page"),
            ({"page": "1.5"}, "page"),
            ({"status": "sleeping"}, "status[0]"),
            ({"provider": "aws"}, "provider[0]"),
            ({"from": "yesterday"}, "from"),
            ({"to": "2026-13-01"}, "to"),
            ({"sort": "image:asc"}, "sort"),
            ({"sort": "createdAt:up"}, "sort"),
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"colour": "red"}, "colour"),
        ],
    )
    async def test_bad_parameters_are_400_never_ignored(
        self, client: httpx.AsyncClient, params: dict[str, str], field: str
    ) -> None:
        response = await client.get(f"{API}/jobs", params=params)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert field in [detail["field"] for detail in error["details"]], error

    async def test_from_after_to_is_400(self, client: httpx.AsyncClient) -> None:
        params = {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
        response = await client.get(f"{API}/jobs", params=params)
        assert response.status_code == 400

    async def test_cursor_with_page_is_400(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        cursor = (await client.get(f"{API}/jobs")).json()["meta"]["pagination"]["nextCursor"]
        response = await client.get(f"{API}/jobs", params={"cursor": cursor, "page": 2})
        assert response.status_code == 400

    async def test_cursor_with_other_filters_is_400(
        self, client: httpx.AsyncClient, mixed: list[str]
    ) -> None:
        cursor = (await client.get(f"{API}/jobs")).json()["meta"]["pagination"]["nextCursor"]
        for changed in ({"status": "running"}, {"sort": "status:asc"}, {"limit": 5}):
            response = await client.get(f"{API}/jobs", params={"cursor": cursor, **changed})
            assert response.status_code == 400, changed
            assert response.json()["error"]["details"][0]["field"] == "cursor"
