"""Shared measures computed from a release (``cilink indicators``): declared in definitions, counted in units."""
