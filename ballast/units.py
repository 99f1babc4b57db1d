"""Human-readable sizes and rates for status, Events and the CLI (``1.5 GiB``, ``50 MiB/s``)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(value: float) -> str:
    """``1536`` -> ``1.5 KiB``; whole bytes below 1 KiB; one decimal above, dropped when it is zero."""
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(size)} B"
            text = f"{size:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_rate(bytes_per_sec: float) -> str:
    return f"{format_bytes(bytes_per_sec)}/s"
