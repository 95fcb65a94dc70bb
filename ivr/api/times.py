"""Time arguments of the API: unix seconds or ISO 8601 (naive = UTC)."""
from __future__ import annotations

import math
from datetime import datetime, timezone

from .errors import ApiError


def parse_time(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ApiError(400, "invalid_field", f"'{name}' must be a finite time")
        return seconds
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "invalid_field",
                       f"'{name}' must be unix seconds or an ISO 8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
