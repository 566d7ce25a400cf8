"""Canonical identity fields shared by every domain (design §4)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RaceEthnicity(StrEnum):
    """OMB SPD-15 (2024) minimum categories; a person may have several."""

    AIAN = "american_indian_alaska_native"
    ASIAN = "asian"
    BLACK = "black_african_american"
    HISPANIC = "hispanic_latino"
    MENA = "middle_eastern_north_african"
    NHPI = "native_hawaiian_pacific_islander"
    WHITE = "white"


def pii(description: str, **kw: object) -> object:
    """A field that identifies a person: it never leaves the restricted zone."""
    return Field(default=None, description=description, json_schema_extra={"pii": True, **kw})


class IdentityRecord(BaseModel):
    """Who a record is about. Every staged row of every domain carries these fields (standardized)."""

    model_config = ConfigDict(extra="forbid")

    source_person_id: str = Field(
        description="The partner's own identifier for the person (required)",
        json_schema_extra={"pii": True, "required_in_source": True},
    )
    first_name: str | None = pii("Given name; standardized: NFKC, casefolded, accents and punctuation removed")
    middle_name: str | None = pii("Middle name or initial (standardized like first_name)")
    last_name: str | None = pii("Family name (standardized like first_name; suffixes split off)")
    name_suffix: str | None = pii("Generational suffix: JR, SR, II, III, IV")
    dob: dt.date | None = pii("Date of birth; impossible dates are nulled and flagged")
    sex: Literal["F", "M", "X"] | None = Field(default=None, description="F, M or X (null when unknown)")
    ssn: str | None = pii("Social Security number, 9 digits; invalid or placeholder values are nulled and flagged")
    ssn_last4: str | None = pii("Last four SSN digits (kept when only a masked SSN is given)")
    shared_id: str | None = pii("An identifier the partners share that is not an SSN (a statewide student id, a "
                                "Medicaid id); standardized: upper-case letters and digits only")
    street: str | None = pii("Street address line (standardized upper-case)")
    unit: str | None = pii("Apartment or unit")
    city: str | None = pii("City")
    state: str | None = Field(default=None, description="Two-letter state code")
    zip5: str | None = pii("5-digit ZIP code, leading zeros restored")
    phone: str | None = pii("Phone number, 10 digits")
    email: str | None = pii("E-mail address, lower-case")
    race_ethnicity: list[RaceEthnicity] | None = Field(
        default=None, description="OMB SPD-15 (2024) categories, multi-valued"
    )
