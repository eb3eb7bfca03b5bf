"""Alembic migrations of the tracking database (shipped with the package so `orchestrator db upgrade` finds them)."""
