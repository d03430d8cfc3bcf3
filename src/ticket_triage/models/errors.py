"""The one error a bundle raises, in its own module so the loader and the manifest can both raise it."""

from __future__ import annotations


class BundleError(ValueError):
    """A bundle is missing, incomplete, corrupt or was written by other library versions."""
