"""School district enrollment records: one row per student per school year (or enrollment spell)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from cilink.schemas.identity import IdentityRecord

GradeLevel = Literal["PK", "K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]


class SchoolRecord(IdentityRecord):
    """A student's enrollment in one school year."""

    school_year: str | None = Field(default=None, description="School year, e.g. 2024-25", pattern=r"^\d{4}-\d{2}$")
    school_id: str | None = Field(default=None, description="School identifier (state or district code)")
    grade_level: GradeLevel | None = Field(default=None, description="Grade: PK, K, 1–12")
    entry_date: dt.date | None = Field(default=None, description="Enrollment start date")
    exit_date: dt.date | None = Field(default=None, description="Enrollment end date (must not precede entry)")
    days_enrolled: int | None = Field(default=None, ge=0, le=366, description="Days enrolled in the year")
    days_present: int | None = Field(default=None, ge=0, le=366, description="Days present")
    days_absent: int | None = Field(default=None, ge=0, le=366, description="Days absent (if present not given)")
    graduated: bool | None = Field(default=None, description="Graduated at the end of this year")
