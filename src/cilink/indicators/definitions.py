"""The shared measures, declared: cilink's default set, merged with the project's ``[[indicators]]``.

Each indicator names the *unit* it counts (a student's school year, a workforce exit, a housing exit …,
built by ``cilink.indicators.units``), a *population* (SQL condition: who is in the denominator), a
*numerator* (SQL condition: who in the population meets the measure) or, for a median, the *value* column,
the *period* column, and optional breakdowns (``by``). Names are asset-based: they say what goes well.

Sources of the definitions, so partners can compare with their own reporting: chronic absence is missing at
least 10% of enrolled days (US ED); employment and median earnings in the 2nd/4th quarter after exit and
credential attainment follow the WIOA primary indicators (simplified: no exclusions, all exits); exits to
permanent housing and returns to homelessness follow HUD System Performance Measures 7b.1 and 2 (at the
release's month precision).
"""

from __future__ import annotations

from cilink.config import CilinkConfig, IndicatorSettings
from cilink.errors import ConfigError

_S = IndicatorSettings

DEFAULT_INDICATORS: tuple[IndicatorSettings, ...] = (
    _S(id="school_attendance", title="Students attending regularly (not chronically absent)", unit="school_year",
       population="chronically_absent IS NOT NULL", numerator="NOT chronically_absent",
       description="Share of students, per school year, who missed fewer than 10% of the days they were "
                   "enrolled (attendance summed over all their enrollments that year)."),
    _S(id="on_time_graduation", title="On-time graduation", unit="graduation_cohort",
       population="complete", numerator="graduated_on_time",
       description="Share of students first seen in grade 9 who graduated within four school years, by the "
                   "school year they were expected to graduate. Students who left the district count as not "
                   "graduating (the release cannot tell a transfer from a dropout)."),
    _S(id="employment_q2", title="Employed in the 2nd quarter after exit", unit="workforce_exit",
       population="employed_q2 IS NOT NULL", numerator="employed_q2",
       description="Share of workforce program exits, by exit year, employed in the second quarter after exit."),
    _S(id="employment_q4", title="Employed in the 4th quarter after exit", unit="workforce_exit",
       population="employed_q4 IS NOT NULL", numerator="employed_q4",
       description="Share of workforce program exits, by exit year, employed in the fourth quarter after exit."),
    _S(id="median_earnings_q2", title="Median earnings in the 2nd quarter after exit (USD)", unit="workforce_exit",
       population="employed_q2 AND earnings_q2 IS NOT NULL", statistic="median", value="earnings_q2",
       description="Median quarterly earnings of exiters employed in the second quarter after exit (release "
                   "earnings are rounded to $100)."),
    _S(id="credential_attainment", title="Credential attained", unit="workforce_exit",
       population="credential_attained IS NOT NULL", numerator="credential_attained",
       description="Share of workforce program exits, by exit year, with a recognised credential."),
    _S(id="exits_to_permanent_housing", title="Exits to permanent housing", unit="housing_exit",
       population="program IN ('es', 'sh', 'th', 'rrh')", numerator="exited_to_permanent_housing",
       description="Share of exits from emergency shelter, safe haven, transitional housing and rapid "
                   "re-housing, by exit year, to a permanent destination (HUD SPM 7b.1)."),
    *[_S(id=f"housing_stability_{n}m", title=f"Stably housed {n} months after a permanent exit",
         unit="housing_exit", population=f"exited_to_permanent_housing AND followup_{n}m",
         numerator=f"NOT returned_{n}m",
         description=f"Share of exits to a permanent destination, by exit year, with no new enrollment in "
                     f"street outreach, emergency shelter, safe haven or transitional housing within {n} "
                     f"months (HUD SPM 2); only exits the data follow for {n} months.")
      for n in (6, 12, 24)],
    _S(id="school_attendance_by_housing", title="Students attending regularly, with and without an HMIS "
       "enrollment that school year", unit="school_year", population="chronically_absent IS NOT NULL",
       numerator="NOT chronically_absent", by=["hmis_enrolled"],
       description="Cross-system: the attendance measure for students who were enrolled in a homeless-services "
                   "(HMIS) project during the school year, and for those who were not. Only linked data can "
                   "give it."),
    _S(id="employment_q2_by_housing_history", title="Employed in the 2nd quarter after exit, with and without a "
       "housing history", unit="workforce_exit", population="employed_q2 IS NOT NULL", numerator="employed_q2",
       by=["housing_history"],
       description="Cross-system: employment after exit for workforce participants who had an HMIS enrollment "
                   "starting before their exit, and for those who had none."),
)


def indicator_definitions(cfg: CilinkConfig) -> list[IndicatorSettings]:
    """The default indicators with the project's ``[[indicators]]`` applied, in order (defaults first).

    A project entry with a default's id overrides only the keys it sets (``enabled = false`` drops it);
    any other entry is a new indicator and must name its ``unit``.
    """
    defaults = {d.id: d for d in DEFAULT_INDICATORS}
    out: dict[str, IndicatorSettings] = dict(defaults)
    for entry in cfg.indicators:
        if entry.id in defaults:
            merged = {**defaults[entry.id].model_dump(), **entry.model_dump(include=entry.model_fields_set)}
            out[entry.id] = IndicatorSettings.model_validate(merged)
        elif entry.unit is None:
            raise ConfigError(f"indicators[{entry.id}].unit: a new indicator needs a unit",
                              hint="set unit to one of school_year, graduation_cohort, workforce_exit, "
                                   "housing_exit, person, panel")
        else:
            out[entry.id] = entry
    return [d for d in out.values() if d.enabled]
