"""Connection settings for one WAHA server, passed in by the caller (the client reads no config itself)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WahaSettings:
    """How to reach one WAHA server and how hard to try.

    ``retry_attempts`` is the number of extra tries after the first one (0 turns retries off); they only
    happen on calls that are safe to repeat. ``pool_min`` is the number of idle connections that idle
    trimming leaves open (see ``portal.waha.pool``).
    """

    base_url: str = "http://127.0.0.1:3000"
    api_key: str = field(default="", repr=False)  # kept out of repr so it never reaches a log
    timeout_ms: int = 10000
    retry_attempts: int = 3
    pool_max: int = 10
    pool_min: int = 1
    pool_acquire_timeout_ms: int = 5000
    pool_idle_timeout_ms: int = 30000
    breaker_fail_max: int = 5
    breaker_reset_s: float = 30
    retry_backoff_s: float = 0.2
    retry_backoff_max_s: float = 2.0

    def __post_init__(self) -> None:
        problems = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must start with http:// or https:// (got {self.base_url!r})")
        if self.timeout_ms <= 0:
            problems.append("timeout_ms must be positive")
        if self.retry_attempts < 0:
            problems.append("retry_attempts must be 0 or more")
        if self.pool_max < 1:
            problems.append("pool_max must be at least 1")
        if not 0 <= self.pool_min <= self.pool_max:
            problems.append("pool_min must be between 0 and pool_max")
        if self.pool_acquire_timeout_ms <= 0:
            problems.append("pool_acquire_timeout_ms must be positive")
        if self.pool_idle_timeout_ms <= 0:
            problems.append("pool_idle_timeout_ms must be positive")
        if self.breaker_fail_max < 1:
            problems.append("breaker_fail_max must be at least 1")
        if self.breaker_reset_s <= 0:
            problems.append("breaker_reset_s must be positive")
        if self.retry_backoff_s < 0 or self.retry_backoff_max_s < 0:
            problems.append("retry backoff must not be negative")
        if problems:
            raise ValueError("invalid WAHA settings: " + "; ".join(problems))
