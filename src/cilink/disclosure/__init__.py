"""Disclosure control shared by everything that prints counts of people: the report, the indicators and the
aggregate tier (``suppression``: small cells and their complements, within and across releases)."""
