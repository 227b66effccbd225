"""A server-side SVG bar chart of verdicts per day, stacked by status (no JavaScript; the template draws it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD = 720, 200, 24
STATUS_ORDER = ("pass", "indeterminate", "fail")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str
    day: str
    count: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    labels: tuple[tuple[float, str], ...]  # (x, day) under some bars
    peak: int


def daily_chart(by_day: list[dict[str, Any]], *, max_days: int = 60) -> Chart:
    """``by_day`` rows ``{day, status, n}`` → stacked bars, one column per day (the newest ``max_days``)."""
    days: dict[str, dict[str, int]] = {}
    for row in by_day:
        days.setdefault(str(row["day"]), {})[str(row["status"])] = int(row["n"])
    ordered = sorted(days)[-max_days:]
    peak = max((sum(days[d].values()) for d in ordered), default=0)
    if not ordered or peak == 0:
        return Chart(WIDTH, HEIGHT, (), (), 0)
    slot = (WIDTH - 2 * PAD) / len(ordered)
    scale = (HEIGHT - 2 * PAD) / peak
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    every = max(1, len(ordered) // 6)
    for i, day in enumerate(ordered):
        x = PAD + i * slot
        base = float(HEIGHT - PAD)
        for status in STATUS_ORDER:
            n = days[day].get(status, 0)
            if n:
                h = n * scale
                base -= h
                bars.append(
                    Bar(round(x + 1, 1), round(base, 1), round(max(slot - 2, 1), 1), round(h, 1), status, day, n)
                )
        if i % every == 0:
            labels.append((round(x, 1), day))
    return Chart(WIDTH, HEIGHT, tuple(bars), tuple(labels), peak)
