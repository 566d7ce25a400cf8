"""Ingest: partner exports → standardized, validated staged records, quarantine and ledger (design §4)."""

from cilink.ingest.batches import IngestResult, ingest_file, validate_batch
from cilink.ingest.reasons import FileProblem, Flag, Reason

__all__ = ["FileProblem", "Flag", "IngestResult", "Reason", "ingest_file", "validate_batch"]
