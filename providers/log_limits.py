"""Limits every adapter applies to a workload's output, whatever it prints: a line is kept up
to MAX_LINE_BYTES (the rest is dropped and the line marked), and one log read holds at most
MAX_READ_BYTES of output in memory."""

from __future__ import annotations

# A longer line keeps its head and ends with the marker below: enough for any stack-trace
# line or JSON log record, small enough that 5,000 lines of a read fit a transaction.
MAX_LINE_BYTES = 16 * 1024
# The output one log read holds in memory at most; a read stopping here leaves the rest for
# the next read.
MAX_READ_BYTES = 4 * 1024 * 1024


def marker(dropped_bytes: int, *, continues: bool = False) -> str:
    """What ends a truncated line. `continues`: the line was still being written when it was
    cut, so the count is of what was seen by then."""
    if continues:
        return f"… [truncated at least {dropped_bytes} bytes]"
    return f"… [truncated {dropped_bytes} bytes]"


def clip(line: str, *, dropped_bytes: int = 0, continues: bool = False) -> str:
    """`line` cut to MAX_LINE_BYTES of UTF-8 and marked when anything was dropped from it.
    `dropped_bytes`: bytes of the line already dropped before it reached here."""
    encoded = line.encode()
    if len(encoded) <= MAX_LINE_BYTES and dropped_bytes == 0 and not continues:
        return line
    head = encoded[:MAX_LINE_BYTES].decode(errors="ignore")
    dropped = dropped_bytes + len(encoded) - len(head.encode())
    return head + marker(dropped, continues=continues)


def dropped(dropped_bytes: int, held_bytes: int) -> str:
    """The line that stands for output a reader counted but did not keep, because it already
    held `held_bytes` the engine had not taken yet."""
    return (
        f"… [{dropped_bytes} bytes of output dropped: the gateway reads at most "
        f"{held_bytes} at a time]"
    )
