"""Templates, batches and idempotent submissions through the client, on a real gateway."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from cortex_client import AsyncClient, Batch, Template, errors

GREETER = {
    "provider": "local",
    "image": "busybox:latest",
    "cpu": 250,
    "memory": "32Mi",
    "storage": "1Gi",
    "duration": 60,
    "env": {"GREETING": "hello", "WHO": "world"},
    "command": ["sh", "-c", "echo $GREETING, $WHO"],
}


async def test_templates_and_jobs_from_them(gateway_url: str, api_key: str) -> None:
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        template = await cortex.templates.create("Greeter", GREETER, description="says hello")
        assert isinstance(template, Template) and template.config["env"]["WHO"] == "world"
        assert [t.id async for t in cortex.templates.iterate()] == [template.id]
        assert (await cortex.templates.list(limit=1)).pagination.total == 1
        renamed = await cortex.templates.update(template.id, name="Greeter 2")
        assert (renamed.name, renamed.description) == ("Greeter 2", "says hello")

        job = await cortex.templates.submit(template.id, {"env": {"WHO": "Cortex"}, "cpu": 500})
        assert (job.template_id, job.cpu) == (template.id, 500)
        assert [line.line async for line in cortex.jobs.follow_logs(job.id)] == ["hello, Cortex"]

        with pytest.raises(errors.ValidationError) as invalid:
            await cortex.templates.create("Broken", {**GREETER, "cpu": 0})
        assert [d["field"] for d in invalid.value.details] == ["config.cpu"]
        await cortex.templates.delete(template.id)
        with pytest.raises(errors.TemplateNotFound):
            await cortex.templates.get(template.id)


async def test_a_batch_runs_and_reports_its_jobs(gateway_url: str, api_key: str) -> None:
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        jobs = [{**GREETER, "command": ["sh", "-c", f"exit {i}"]} for i in range(3)]
        submitted = await cortex.batches.submit(jobs, concurrency=2)
        assert len(submitted.job_ids) == 3
        async with asyncio.timeout(60):
            for job_id in submitted.job_ids:
                await cortex.jobs.wait(job_id)
        batch = await cortex.batches.get(submitted.batch_id)
        assert isinstance(batch, Batch) and batch.status == "finished"
        assert batch.counts["completed"] == 1 and batch.counts["failed"] == 2
        listed = [j.id async for j in cortex.jobs.iterate(batch_id=submitted.batch_id)]
        assert sorted(listed) == sorted(submitted.job_ids)
        assert [b.id async for b in cortex.batches.iterate()] == [submitted.batch_id]
        with pytest.raises(errors.BatchAlreadyFinished):
            await cortex.batches.cancel(submitted.batch_id)

        with pytest.raises(errors.ValidationError) as invalid:
            await cortex.batches.submit([GREETER, {**GREETER, "cpu": 0}], concurrency=1)
        assert [d["field"] for d in invalid.value.details] == ["jobs[1].cpu"]


async def test_a_repeated_idempotency_key_creates_one_job(gateway_url: str, api_key: str) -> None:
    async with AsyncClient(url=gateway_url, api_key=api_key) as cortex:
        spec = {**GREETER, "command": ["true"]}
        first, second = await asyncio.gather(
            cortex.jobs.submit(spec, idempotency_key="order-42"),
            cortex.jobs.submit(spec, idempotency_key="order-42"),
        )
        assert first.id == second.id
        other = await cortex.jobs.submit(spec)  # a fresh key of its own
        assert other.id != first.id
        ids = Counter([j.id async for j in cortex.jobs.iterate()])
        assert set(ids) == {first.id, other.id}
