"""Cortex Gateway: one REST API for container jobs on DePIN networks and a local runtime."""

__version__ = "0.1.0"
