"""The destination policy for every outbound URL the portal accepts.

A URL passes in two steps, both strict:

1. **Form.** http or https only, a host, no user name or password, no backslash, space or control character, a
   port in 1..65535. A host is either a bracketed IPv6 literal (no zone), a canonical dotted-quad IPv4 address,
   or a DNS name of letter-digit-hyphen labels (internationalised names are accepted only as valid IDNA 2008
   and are rewritten to their ASCII form). Forms that other parsers read as an IPv4 address (127.1, 2130706433,
   0x7f000001, 0177.0.0.1, 0), a trailing dot, empty labels and look-alike dots are refused, so the portal, WAHA
   and the browser all read the same host.
2. **Address.** The host is resolved; every address must be public. Refused: loopback, private, link-local,
   CGNAT (100.64/10), multicast, unspecified, reserved and documentation ranges, IPv4-compatible IPv6, and the
   IPv4-mapped, 6to4 (2002::/16) and NAT64 (64:ff9b::/96) forms of a non-public IPv4 address. With
   `allow_private` (WEBHOOK_ALLOW_PRIVATE, development) only the form and the resolution are checked.

The checked addresses are returned, so the caller can connect to exactly those (see portal.net.http).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

URL_MAX = 2048
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks5": 1080, "socks5h": 1080}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")  # what the WHATWG URL parser takes for an IPv4 part
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_LOOKALIKE_DOTS = re.compile("[\u3002\uff0e\uff61]")  # IDNA reads these as "."; only a plain dot is taken
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

_V4_BLOCKED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255
    )
)
_V6_BLOCKED = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo among them
        "2001:db8::/32",
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "64:ff9b:1::/48",  # local-use NAT64
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class Refused(ValueError):
    """Why a destination is refused. `reason` completes "This URL ..."; `kind` is "form", "unresolvable" or
    "private" (only "unresolvable" may change by itself, so only it is worth retrying)."""

    def __init__(self, reason: str, kind: str = "form"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class Destination:
    """A checked URL: the URL to use (host in ASCII form), its parts, and the addresses that passed the check."""

    url: str
    scheme: str
    host: str  # DNS name in ASCII, or the IP address without brackets
    port: int
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        """The Host header value for this destination (port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS.get(self.scheme) else f"{host}:{self.port}"


# ---------------------------------------------------------------------------------------------- addresses


def address_problem(address: str | IPAddress) -> str | None:
    """Why `address` is not a public unicast address (None when it is)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "is a scoped address"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return address_problem(embedded)
        if ip in _V4_COMPATIBLE:  # ::, ::1 and the deprecated IPv4-compatible form ::a.b.c.d
            return "is not a public address"
        if ip not in _V6_GLOBAL_UNICAST or any(ip in net for net in _V6_BLOCKED):
            return "is not a public address"
        return None
    if any(ip in net for net in _V4_BLOCKED) or not ip.is_global:
        return "is not a public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4 or well-known NAT64 prefix."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for host (TCP), in its order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# ---------------------------------------------------------------------------------------------- form


def _host(raw: str) -> tuple[str, bool]:
    """(host in canonical form, whether it was rewritten); Refused when it is no acceptable host."""
    if raw.startswith("["):
        if not raw.endswith("]") or "%" in raw:
            raise Refused("has an invalid IPv6 address")
        try:
            return str(ipaddress.IPv6Address(raw[1:-1])), False
        except ValueError:
            raise Refused("has an invalid IPv6 address") from None
    if not raw:
        raise Refused("must have a host")
    rewritten = False
    if _LOOKALIKE_DOTS.search(raw):
        raise Refused("has a host name with a look-alike dot; write it with plain dots")
    if not raw.isascii():
        try:
            ascii_host = idna.encode(raw, uts46=False, std3_rules=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            raise Refused("has a host name that is not a valid internationalised domain name") from None
        raw, rewritten = ascii_host, True
    host = raw.lower()
    rewritten = rewritten or host != raw
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        # Anything ending in a number is an IPv4 address to a browser; only the canonical form is accepted.
        try:
            return str(ipaddress.IPv4Address(host)), rewritten
        except ValueError:
            raise Refused("has an IPv4 address that is not written as four decimal numbers (a.b.c.d)") from None
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise Refused("has an invalid host name")
    return host, rewritten


def parse(url: object, *, schemes: Iterable[str] = SCHEMES, path_allowed: bool = True) -> tuple[str, str, str, int]:
    """Check the form of url; returns (url with its host in canonical form, scheme, host, port)."""
    if not isinstance(url, str) or not url:
        raise Refused("must be an http:// or https:// URL")
    if len(url) > URL_MAX:
        raise Refused(f"must be at most {URL_MAX} characters")
    if _FORBIDDEN_CHARS.search(url):
        raise Refused("must not contain spaces, backslashes or control characters")
    schemes = tuple(schemes)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise Refused("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes or not url[len(parts.scheme) :].startswith("://"):
        raise Refused("must be " + " or ".join(f"a {s}://" for s in schemes) + " URL")
    netloc = parts.netloc
    if "@" in netloc:
        raise Refused("must not carry a user name or password")
    host_part, port = netloc, None
    if netloc.startswith("["):
        end = netloc.find("]")
        host_part, rest = (netloc[: end + 1], netloc[end + 1 :]) if end > 0 else (netloc, "")
        if rest and not rest.startswith(":"):
            raise Refused("has an invalid IPv6 address")
        port = rest[1:] if rest else None
    elif ":" in netloc:
        host_part, port = netloc.rsplit(":", 1)
    if port is not None and (not (port.isascii() and port.isdecimal()) or not 0 < int(port) < 65536):
        raise Refused("has an invalid port")
    host, rewritten = _host(host_part)
    port_number = int(port) if port else DEFAULT_PORTS[scheme]
    if not path_allowed and (parts.path not in ("", "/") or parts.query or parts.fragment):
        raise Refused("must be only a host and a port")
    if rewritten:
        shown = f"[{host}]" if ":" in host else host
        url = urlunsplit((parts.scheme, shown + (f":{port}" if port else ""), parts.path, parts.query, parts.fragment))
    return url, scheme, host, port_number


# ---------------------------------------------------------------------------------------------- both


def check(
    url: object,
    *,
    allow_private: bool,
    schemes: Iterable[str] = SCHEMES,
    path_allowed: bool = True,
    resolve: Resolver = system_resolver,
) -> Destination:
    """Check form and addresses of url; returns the Destination with the addresses that passed. Raises Refused."""
    url, scheme, host, port = parse(url, schemes=schemes, path_allowed=path_allowed)
    if not allow_private and (host in _LOCAL_NAMES or host.endswith(".localhost")):
        raise Refused("points to a non-public address (a local host name)", "private")
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            addresses = list(resolve(host, port))
        except (OSError, UnicodeError):
            raise Refused(f"has a host {host!r} that cannot be resolved", "unresolvable") from None
    clean: list[str] = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # connect to the plain IPv4 address it stands for
        problem = None if allow_private else address_problem(ip)
        if problem:
            raise Refused(f"resolves to a non-public address ({ip})", "private")
        clean.append(str(ip))
    if not clean:
        raise Refused(f"has a host {host!r} that cannot be resolved", "unresolvable")
    return Destination(url=url, scheme=scheme, host=host, port=port, addresses=tuple(dict.fromkeys(clean)))
