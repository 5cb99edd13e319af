"""Loaders for real Telugu corpora from local folders (filled in below)."""

CORPORA: dict = {}
