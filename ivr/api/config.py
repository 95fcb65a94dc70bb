"""Settings of the HTTP API (validated by the CLI; plain values here)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Collection, Mapping


@dataclass
class ApiConfig:
    #: API keys -> {"name": str, "rate": requests/second, "burst": n}
    api_keys: dict[str, dict] = field(default_factory=dict)
    default_region: str = "US"
    rate: float = 5.0               # default per-key refill, requests per second
    burst: float = 20.0             # default per-key bucket size
    ring_timeout: float = 30.0      # default ring timeout of each leg
    max_ring_timeout: float = 120.0
    max_duration_limit: float = 4 * 3600.0
    recordings_dir: str | None = None
    #: Names of dialplan flows that POST /v1/calls may run; None = don't check here.
    flows: Collection[str] | None = None
    default_caller_id: str | None = None
    session_ttl: float = 3600.0     # how long ended sessions stay visible
    max_list: int = 1000            # cap on ?limit=
    # the demo page and its server-side endpoint
    demo_enabled: bool = True
    demo_agent: str = "2001"
    demo_caller_id: str | None = None
    demo_whisper: str | None = None
    demo_rate_calls: float = 3.0    # calls per visitor ...
    demo_rate_period: float = 60.0  # ... per this many seconds
    trust_forwarded_for: bool = False  # take the visitor IP from X-Forwarded-For

    def keys(self, environ: Mapping[str, str] | None = None) -> dict[str, dict]:
        """Configured keys plus ``IVR_API_KEY`` from the environment (development)."""
        environ = os.environ if environ is None else environ
        keys = {k: dict(v or {}) for k, v in self.api_keys.items()}
        dev = environ.get("IVR_API_KEY", "").strip()
        if dev:
            keys.setdefault(dev, {"name": "IVR_API_KEY", "admin": True})
        return keys
