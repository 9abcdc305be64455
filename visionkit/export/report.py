"""``export/report.json`` and its printed table."""

from __future__ import annotations

from typing import Any

METRIC_KEYS = ("accuracy", "miou", "map50_95", "map50")


def format_table(report: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of the report: format, size, max |Δ| vs Keras, metric, latency."""
    metrics = [k for k in METRIC_KEYS if any(k in entry for entry in report.values())]
    header = ["format", "MB", "max_abs_diff", *metrics, "agreement", "latency_ms"]
    rows = []
    for name, entry in report.items():
        size = entry.get("bytes")
        diff = entry.get("max_abs_diff")
        rows.append(
            [
                name,
                f"{size / 1e6:.2f}" if size is not None else "",
                "" if diff is None else f"{diff:.2e}",
                *(_number(entry.get(k)) for k in metrics),
                _number(entry.get("agreement")),
                _number(entry.get("latency_ms"), 2),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}"
