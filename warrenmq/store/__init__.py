"""Persistence behind a small interface (see base.py)."""
