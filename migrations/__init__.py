"""Alembic migrations of the tracking database.

This folder is the package ``orchestrator.migrations``: the wheel ships it as ``orchestrator/migrations`` and an
editable install maps the name onto it (setup.py), so the revisions import their frozen view SQL by that name.
"""
