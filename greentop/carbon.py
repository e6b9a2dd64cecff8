"""Grid carbon intensity (gCO2e per kWh of electricity) by region, with its source.

Every value below is copied verbatim, for the year 2024, from Our World in Data's
"Carbon intensity of electricity generation" chart data (grams of CO2-equivalents emitted per
kWh of electricity generated; OWID processing of Ember's yearly electricity data and the Energy
Institute's Statistical Review of World Energy), as stored in the public repository
``pluginsGLPI/carbon``, file ``install/data/carbon_intensity/carbon-intensity-electricity.csv``
(commit 4e695c14be1807826b9f70b0795b9408c11753bd), whose source note names
https://ourworldindata.org/grapher/carbon-intensity-electricity. One table, one year and one
publisher for every region, so regions compare like with like; "WORLD" is OWID's ``World``
(OWID_WRL) row and "EU" its ``European Union (27)`` (OWID_EU27) row.

These are yearly averages of a whole grid. Hour-to-hour intensity varies by a factor of two or more
on many grids, and a data centre's contracted supply may differ from its grid's average: pass
``--carbon-intensity`` (an explicit value wins) when a better figure is known.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_YEAR = 2024
SOURCE = (
    f"Our World in Data, 'Carbon intensity of electricity generation' (Ember; Energy Institute "
    f"Statistical Review of World Energy), {DATA_YEAR} values, gCO2e/kWh, "
    f"https://ourworldindata.org/grapher/carbon-intensity-electricity; copied from pluginsGLPI/carbon "
    f"install/data/carbon_intensity/carbon-intensity-electricity.csv"
)


@dataclass(frozen=True)
class Region:
    code: str  # ISO 3166-1 alpha-2, or "WORLD" / "EU"
    name: str  # the entity name in the source table
    g_per_kwh: float  # gCO2e per kWh, DATA_YEAR


# Values verbatim from the source row "<name>,<ISO3>,2024,<value>".
REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("WORLD", "World", 471.08),
        Region("EU", "European Union (27)", 211.2029),
        Region("AU", "Australia", 553.83),
        Region("BR", "Brazil", 106.06),
        Region("CA", "Canada", 185.35),
        Region("CN", "China", 555.4),
        Region("DE", "Germany", 336.38),
        Region("ES", "Spain", 146.22),
        Region("FR", "France", 40.48),
        Region("GB", "United Kingdom", 216.5),
        Region("IN", "India", 705.4),
        Region("IT", "Italy", 281.4),
        Region("JP", "Japan", 483.43),
        Region("NL", "Netherlands", 250.72),
        Region("NO", "Norway", 29.66),
        Region("PL", "Poland", 608.18),
        Region("SE", "Sweden", 34.91),
        Region("US", "United States", 383.78),
    )
}

DEFAULT_REGION = "WORLD"
# Common aliases people type; they map to a code above, never to a value of their own.
_ALIASES = {"UK": "GB", "EU27": "EU", "WORLD": "WORLD", "GLOBAL": "WORLD"}


def known_codes() -> list[str]:
    return sorted(REGIONS)


def intensity_for(region: str | None, explicit: float | None) -> tuple[float, str]:
    """The carbon intensity to use (gCO2e/kWh) and a one-line description of where it comes from.

    An explicit value wins over a region; with neither, the world average. An unknown region is a
    ``ValueError`` whose message lists the known codes (one line, fit for the CLI's exit-2 path).
    """
    if explicit is not None:
        if not explicit >= 0:  # also catches NaN
            raise ValueError(f"carbon intensity must be a number >= 0 gCO2e/kWh, got {explicit!r}")
        return float(explicit), f"given explicitly ({explicit:g} gCO2e/kWh)"
    code = (region or DEFAULT_REGION).strip().upper()
    code = _ALIASES.get(code, code)
    r = REGIONS.get(code)
    if r is None:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(known_codes())}")
    return r.g_per_kwh, f"{r.code} ({r.name}) {r.g_per_kwh:g} gCO2e/kWh: {SOURCE}"
