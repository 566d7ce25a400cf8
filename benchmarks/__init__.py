"""Reproducible comparisons of cilink with recordlinkage and plain Splink 5 (`make bench`, `make bench-quick`).

Modules: ``measure`` (each step in a child under a time and memory limit), ``peers`` (the recordlinkage and
Splink setups), ``accuracy`` (FEBRL4), ``scale`` (synthetic populations), ``new_records`` (incremental vs
full), ``results`` (rows and CSV), ``report`` (tables, README, chart). The stand-alone scripts
``febrl4.py``, ``incremental.py``, ``ingest_1m.py`` and ``export_1m.py`` still run on their own.
"""
