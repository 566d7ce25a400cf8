"""The link stage (design §5): who is who across and within partners.

``link_workspace(ws, full=False, retrain=False)`` (``cilink.link.linkage``) runs it end to end; the rules are
in ``comparisons``, the Splink adapter in ``engine`` (the only module importing splink), and how it all
fits together — thresholds, guards, person IDs, incremental runs, review — in ``docs/linkage.md``.
"""
