"""Stable codes for every ingest outcome: row quarantine reasons, data-quality flags, whole-file rejections.

Tests, the ledger and the partner-facing quarantine CSV use these codes, never message wording
(style.md §10). Adding a code is fine; renaming one breaks stored ledgers and partners' tooling.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a row was quarantined (kept aside, not staged)."""

    MISSING_SOURCE_PERSON_ID = "missing_source_person_id"
    MISSING_REQUIRED = "missing_required"
    UNPARSEABLE_DATE = "unparseable_date"
    EXIT_BEFORE_ENTRY = "exit_before_entry"
    FUTURE_DATE = "future_date"
    DATE_BEFORE_1900 = "date_before_1900"
    RAGGED_ROW = "ragged_row"
    INVALID_VALUE = "invalid_value"
    #: hmis-csv: an Enrollment.csv row whose PersonalID has no (undeleted) Client.csv row
    ORPHAN_RECORD = "orphan_record"
    #: hmis-csv: the source marked the row deleted (DateDeleted set); kept aside so counts reconcile
    DELETED_IN_SOURCE = "deleted_in_source"


class Flag(StrEnum):
    """Data-quality flags on accepted rows; the flagged value is set to null (or reduced, e.g. to last4)."""

    SSN_INVALID = "ssn_invalid"
    SSN_MASKED = "ssn_masked"
    DOB_IMPOSSIBLE = "dob_impossible"
    ZIP_INVALID = "zip_invalid"
    PHONE_INVALID = "phone_invalid"
    EMAIL_INVALID = "email_invalid"
    CODE_UNMAPPED = "code_unmapped"
    #: an optional date that is missing its format or is ambiguous (required dates quarantine instead)
    DATE_UNPARSEABLE = "date_unparseable"
    #: a birth date the partner's format did not read but one unambiguous repair did (look-alike characters,
    #: day and month exchanged); the repaired date is kept, and linkage trusts it less than one as written
    DOB_REPAIRED = "dob_repaired"


class FileProblem(StrEnum):
    """Why a whole file was rejected (InputRejected, exit 3); nothing is written."""

    UNKNOWN_PARTNER = "unknown_partner"
    FILE_NOT_FOUND = "file_not_found"
    EMPTY_FILE = "empty_file"
    NO_DATA_ROWS = "no_data_rows"
    UNDECODABLE = "undecodable"
    MISSING_COLUMN = "missing_column"
    DUPLICATE_COLUMN = "duplicate_column"
    WRONG_SHEET = "wrong_sheet"
    MISSING_HMIS_FILE = "missing_hmis_file"
    MALFORMED = "malformed"
    UNSUPPORTED_DATE_FORMAT = "unsupported_date_format"
    ALL_ROWS_QUARANTINED = "all_rows_quarantined"
    #: the same file was ingested before and its data purged on purpose
    PURGED_FILE = "purged_file"
    #: format "encoded" but the file carries no (complete) cilink.encoding metadata
    NOT_ENCODED = "not_encoded"
    #: encoded with another scheme, parameters, domain or partner than this hub or its other encoded partners
    ENCODING_MISMATCH = "encoding_mismatch"
    #: encoded with another secret than the hub's encoding secret or another encoded partner
    ENCODING_KEY_MISMATCH = "encoding_key_mismatch"
    #: an encoded file that still holds plaintext identifier columns
    PLAINTEXT_IN_ENCODED = "plaintext_in_encoded"
    #: a date (or other typed) column where more than ``max_unparseable_share`` of the values fail to parse,
    #: or where another date format reads every value the configured one misses (swapped day and month)
    IMPLAUSIBLE_COLUMN = "implausible_column"
    #: the bytes are another kind of file (xlsx, zip, Parquet, JSON, PDF …) than the partner's `format`
    WRONG_FORMAT = "wrong_format"
    #: over a resource cap: zip uncompressed size or ratio, xlsx dimensions, JSON nesting, file size
    TOO_LARGE = "too_large"
    #: a password-protected zip or workbook
    ENCRYPTED = "encrypted"
    #: readable container, but a part cilink does not read (Deflate64 zip member, Parquet Duration column …)
    UNSUPPORTED_CONTENT = "unsupported_content"
    #: a symlink, FIFO, device or folder where a regular file was expected
    NOT_REGULAR_FILE = "not_regular_file"
    #: reading the file failed in a way cilink did not foresee; the file is rejected alone (a bug to report)
    UNREADABLE = "unreadable"
