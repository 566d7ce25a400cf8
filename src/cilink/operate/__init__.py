"""Unattended operation: the inbox run for cron, purge, and the audit trail."""
