"""Alembic migrations of the store's schema (``versions/``), applied by
:mod:`gateway.store.migrate`. Part of ``gateway.store``: may import what it may.
"""
