"""The webhook receiver of the webhook tests, for the `job.progress` deliveries."""

from __future__ import annotations

from tests.webhooks.conftest import receiver

__all__ = ["receiver"]
