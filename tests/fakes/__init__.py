"""Fake networks: real HTTP servers on loopback ports speaking each network's wire format."""
