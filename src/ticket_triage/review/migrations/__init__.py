"""Alembic environment of the review store (a package so an installed wheel ships it)."""
