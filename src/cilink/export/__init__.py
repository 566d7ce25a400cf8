"""The release stage (design §6): a de-identified longitudinal dataset, checked by the privacy gate."""

from cilink.export.open import Release, open_release
from cilink.export.release import ExportResult, export_release

__all__ = ["ExportResult", "Release", "export_release", "open_release"]
