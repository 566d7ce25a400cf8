"""cilink: link people across partner organisations and release a de-identified longitudinal dataset."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cilink")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__", "open_release"]


def open_release(path, *, verify=False):  # type: ignore[no-untyped-def]
    """Open a release directory as polars LazyFrames (persons, events, spells, panel).

    ``verify=True`` first checks every file against the sha256 in its manifest.
    Example: ``r = cilink.open_release("releases/2026-11-23T120000Z"); r.persons.collect()``
    """
    from cilink.export.open import open_release as _open

    return _open(path, verify=verify)
