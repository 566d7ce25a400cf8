"""The partner report: one self-contained HTML file of aggregates (``cilink report``)."""
