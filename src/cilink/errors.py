"""The one error hierarchy: every failure cilink reports carries an exit code (design §7) and a fix hint."""

from __future__ import annotations


class CilinkError(Exception):
    """Root of every error cilink raises on purpose.

    ``message`` says what went wrong (naming file, row, column — never a data value);
    ``hint`` says what to do about it.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nFix: {self.hint}"


class UsageError(CilinkError):
    """Bad command-line usage (exit 2)."""

    exit_code = 2


class ConfigError(CilinkError):
    """cilink.toml is missing or invalid, or the secret is unavailable (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, problems: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.problems = problems or []


class InputRejected(CilinkError):
    """A partner file was rejected as a whole; nothing was written (exit 3)."""

    exit_code = 3

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        file: str | None = None,
        column: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.file = file
        self.column = column
        self.reason = reason


class WorkspaceBusy(CilinkError):
    """Another cilink process holds the workspace lock (exit 4)."""

    exit_code = 4


class PrivacyGateRefused(CilinkError):
    """The release failed the privacy gate; nothing was written (exit 5)."""

    exit_code = 5

    def __init__(self, message: str, hint: str | None = None, failures: list[str] | None = None) -> None:
        super().__init__(message, hint)
        self.failures = failures or []


class WorkspaceError(CilinkError):
    """The directory is not a cilink workspace, or a stage's inputs are missing (exit 2)."""

    exit_code = 2


class DiskFull(CilinkError):
    """The disk filled up; every output is written atomically, so nothing was half-written (exit 7)."""

    exit_code = 7


class Interrupted(BaseException):
    """SIGINT (Ctrl-C, exit 130) or SIGTERM (exit 143) reached cilink.

    A BaseException, like KeyboardInterrupt, so no ``except CilinkError`` or ``except Exception`` on the way
    swallows it, while every ``finally`` and rollback still runs.
    """

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = exit_code


#: the signals the CLI received (cilink.cli): raised inside a library callback (DuckDB, polars) an Interrupted
#: may come back as that library's own error, and whoever catches broadly checks here first
SIGNALS_RECEIVED: list[Interrupted] = []

#: exit codes of the README table ("Exit codes"); tests check the table lists every one
EXIT_CODES = {0: "ok", 1: "unexpected error", 2: "usage or configuration error", 3: "input rejected",
              4: "workspace busy", 5: "privacy gate refused", 6: "purge --verify found purged data",
              7: "disk full", 130: "interrupted (SIGINT)", 143: "terminated (SIGTERM)"}
