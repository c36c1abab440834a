"""Settings of the simulator: one dataclass shared by the CLI, create_app and SimServer."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

ENGINES = ("GOWS", "NOWEB", "WEBJS")


@dataclass
class Settings:
    """Everything that changes how the fake WAHA behaves. Times are in seconds."""

    host: str = "127.0.0.1"
    port: int = 3000
    api_key: str | None = "sim-key"
    engine: str = "GOWS"
    core_single_session: bool = False
    # What an omitted "start" means on POST /api/sessions. WAHA's controller does
    # `request.start || false`, so the faithful default is False.
    start_default: bool = False
    starting_delay: float = 0.3
    qr_first_seconds: float = 60.0
    qr_next_seconds: float = 20.0
    qr_max: int = 6
    ack_delay: float = 0.3
    # Whether sent messages are READ on the phone by themselves (the third auto ack); off, they stop at DEVICE
    # until the customer reads them (control hook `read`).
    auto_read: bool = True
    auto_scan: float | None = None
    auto_scan_phone: str = "491701234567"
    files_lifetime: float = 180.0
    public_url: str | None = None
    version: str = "2026.7.1"
    tier: str | None = None
    status_wait: float = 0.0
    webhook_timeout: float = 10.0
    webhook_workers: int = 4
    max_messages: int = 5000
    log_level: str = "INFO"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.engine = self.engine.upper()
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
        if self.qr_max < 1:
            raise ValueError("qr_max must be at least 1")

    @property
    def effective_tier(self) -> str:
        """CORE for the old single-session image, PLUS otherwise, unless set explicitly."""
        if self.tier:
            return self.tier
        return "CORE" if self.core_single_session else "PLUS"

    @property
    def browser(self) -> str | None:
        """Browser path reported by browser engines; GOWS and NOWEB report null."""
        return "/usr/bin/google-chrome-stable" if self.engine == "WEBJS" else None

    @property
    def base_url(self) -> str:
        """Base of media.url links (WAHA_BASE_URL)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_mapping(cls, values: dict | None) -> Settings:
        """Build settings from a dict, ignoring keys that are not settings."""
        values = dict(values or {})
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        return cls(**known)
