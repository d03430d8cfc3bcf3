"""Files shipped inside the package (default feature config, migrations, reviewer page), found with
importlib.resources: they are where the installed package is, whatever the checkout or working folder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_path(package: str, *parts: str) -> Path:
    """A file or folder of ``package`` on disk. pip installs wheels unpacked, so there always is one; a
    zipped install has none, and the libraries reading these (alembic, Jinja2) need real paths."""
    found = resources.files(package).joinpath(*parts)
    if not isinstance(found, Path):
        raise RuntimeError(f"{package} is installed zipped; install it unpacked (pip) to read {found}")
    return found
