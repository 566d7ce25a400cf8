"""Homeless-services (HUD HMIS) enrollment records."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from cilink.schemas.identity import IdentityRecord

DestinationCategory = Literal["permanent", "temporary", "institutional", "homeless", "other", "unknown"]


class HousingRecord(IdentityRecord):
    """One HMIS project enrollment (a client may have several)."""

    enrollment_id: str | None = Field(default=None, description="HMIS EnrollmentID")
    project_type: int | None = Field(
        default=None, description="HUD project type code (e.g. 0/1 ES, 2 TH, 3 PSH, 13 RRH)"
    )
    household_id: str | None = Field(default=None, description="HMIS HouseholdID", json_schema_extra={"pii": True})
    relationship_to_hoh: int | None = Field(default=None, description="HUD RelationshipToHoH code (1 = head)")
    entry_date: dt.date = Field(description="Project start date", json_schema_extra={"required_in_source": True})
    move_in_date: dt.date | None = Field(default=None, description="Housing move-in date")
    exit_date: dt.date | None = Field(default=None, description="Project exit date")
    destination: int | None = Field(default=None, description="HUD exit destination code")
    destination_category: DestinationCategory | None = Field(
        default=None,
        description="Derived from destination: permanent, temporary, institutional, homeless, other, unknown",
    )
