"""Render's compute subnet (OTOY's Dispersed API): signed REST calls, BATCH container jobs."""

from providers.render.adapter import RenderProvider

__all__ = ["RenderProvider"]
