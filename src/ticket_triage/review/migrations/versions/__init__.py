"""Revisions of the review store schema."""
