"""The one error type the CLI turns into a red line and a non-zero exit.

Raise it at the boundaries (bad input, unusable folder, missing device) with a message a user can act on.
It is deliberately not used for a task that fails during a run: that becomes a span with status "error".
"""


class BenchError(Exception):
    """A user-facing error: its message is printed as one line, without a traceback."""


class Terminated(BaseException):
    """SIGTERM (from `kill`, `timeout`, a scheduler): handled like Ctrl-C, which raises KeyboardInterrupt."""


def error_text(e: BaseException) -> str:
    """One line: the exception type and its message (what a failed task's record and meta.json keep)."""
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}"[:500] if msg else type(e).__name__
