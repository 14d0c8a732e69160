"""Tests of the HTTP executors (``beacon_orchestrator.adapters``)."""
