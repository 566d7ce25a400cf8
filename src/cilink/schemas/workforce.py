"""Workforce board (WIOA-style) program participation records."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from cilink.schemas.identity import IdentityRecord


class WorkforceRecord(IdentityRecord):
    """One participation in a workforce program."""

    program: str | None = Field(default=None, description="Program name or code (e.g. WIOA Adult)")
    entry_date: dt.date = Field(
        description="Program entry (participation) date", json_schema_extra={"required_in_source": True}
    )
    exit_date: dt.date | None = Field(default=None, description="Program exit date")
    employed_q2: bool | None = Field(default=None, description="Employed in the 2nd quarter after exit")
    employed_q4: bool | None = Field(default=None, description="Employed in the 4th quarter after exit")
    earnings_q2: float | None = Field(default=None, ge=0, description="Earnings in the 2nd quarter after exit (USD)")
    credential_attained: bool | None = Field(default=None, description="Attained a recognised credential")
