"""The link stage (design §5): who is who across and within partners.

``link_workspace(ws, full=False, retrain=False)`` (``cilink.link.linkage``) runs it end to end; the rules are
in ``comparisons``, the Splink adapter in the ``engine`` package (the only code importing splink, duckdb or
pyspark; ruff holds it), the blocking of new records in ``candidates``, and how it all fits together —
thresholds, guards, person IDs, incremental runs, review — in ``docs/linkage.md``.
"""
