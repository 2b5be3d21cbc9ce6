"""SSRF guard for the crawler's HTTP client.

Threat model: ingest fetches URLs that users supply (seeds) and URLs that fetched pages supply (links,
redirects). Without a guard, anyone who can submit a URL can make the service request hosts that only it
can reach: the cloud metadata endpoint (``169.254.169.254``), admin ports on loopback, the private
network behind it. Checking the URL string is not enough, for three reasons:

* hosts are written in many spellings (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``[::ffff:127.0.0.1]``,
  ``[64:ff9b::7f00:1]``) and a host *name* can resolve to any address at all;
* a public page can redirect to a private address, so every hop must be checked;
* DNS rebinding: if the guard resolves a name, checks the answer and then lets the socket layer resolve
  it again, a hostile DNS server answers "public" to the check and "127.0.0.1" to the connect.

So the check lives where the connection is made. :class:`GuardedBackend` is an httpcore network backend
whose ``connect_tcp`` resolves the host once, refuses the connection if *any* resolved address is
blocked, and then connects to the checked IP literal itself: the connection is pinned to the address that
was checked, and no second lookup happens. TLS still verifies the certificate against the URL's host
name, because httpcore passes that name to ``start_tls`` separately. httpx follows redirects by sending a
new request through the transport, so every hop goes through ``connect_tcp`` and is checked again.

Wiring::

    client = httpx.AsyncClient(transport=guarded_transport(AddressPolicy()), follow_redirects=True)

A blocked connection surfaces from ``client.get(...)`` as ``httpx.ConnectError`` whose message starts
with ``"blocked address"`` and whose ``__cause__`` is a :class:`BlockedConnectError`. :func:`check_url`
is the cheap pre-flight check for a URL before it is queued; it raises :class:`BlockedAddressError`.

What a caller must not undo: give the client no ``proxy=`` or ``mounts=`` (a proxy connects on our
behalf, past the guard). Environment proxies are not a hole: httpx ignores them when a transport is
passed. Connection limits, ``http2`` and ``retries`` belong to :func:`guarded_transport`, because httpx
ignores a client's ``limits=`` when it is given a transport.

Base rule: an address is blocked unless ``ipaddress`` calls it global; a table on top of that names the
common ranges (and adds a few that this Python's ``is_global`` still calls global), and IPv6 forms that
embed an IPv4 address (mapped, translated, compatible, NAT64, 6to4, Teredo) are blocked when the embedded
address is. An :class:`AddressPolicy` allow-list opens chosen hosts or networks on purpose.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TypeAlias

import anyio
import httpcore
import httpx

from citeline.ingest._exceptions import FetchError

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network
Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> IP address strings``; the default is :func:`system_resolver`."""

ALLOWED_SCHEMES = ("http", "https")

# First match names the reason; `is_global` below still blocks anything these miss.
_SPECIAL_V4: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), label)
    for net, label in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_SPECIAL_V6: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), label)
    for net, label in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),  # Python 3.11's is_global calls it global
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001:2::/48", "benchmarking"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),  # is_global misses it
        ("5f00::/16", "SRv6 segment identifiers"),  # is_global misses it
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),  # is_global misses it
        ("ff00::/8", "multicast"),
    )
)
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")
_IPV4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_LOW_32_BITS = 0xFFFFFFFF


def _ipv4_spelling(ip: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address that ``ip`` is only another way of writing, with the form's name."""
    low = IPv4Address(int(ip) & _LOW_32_BITS)
    if ip in _IPV4_MAPPED:
        return "IPv4-mapped", low
    if ip in _IPV4_TRANSLATED:
        return "IPv4-translated", low
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are not compatible forms
        return "IPv4-compatible", low
    return None


def _tunnelled_ipv4(ip: IPv6Address) -> list[tuple[str, IPv4Address]]:
    """IPv4 addresses that a packet to ``ip`` is translated or tunnelled to, with the form's name."""
    if ip in _NAT64:
        return [("NAT64", IPv4Address(int(ip) & _LOW_32_BITS))]
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    return []


def special_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address (``"loopback"``, ...), or ``None`` when it is one."""
    if isinstance(ip, IPv6Address):
        spelled = _ipv4_spelling(ip)
        if spelled is not None:
            # Python versions disagree on these forms' is_global; the IPv4 address they name decides.
            form, inner = spelled
            reason = special_reason(inner)
            return None if reason is None else f"{form} {inner}: {reason}"
        for form, inner in _tunnelled_ipv4(ip):
            reason = special_reason(inner)
            if reason is not None:
                return f"{form} {inner}: {reason}"
    special = _SPECIAL_V4 if isinstance(ip, IPv4Address) else _SPECIAL_V6
    for network, label in special:
        if ip in network:
            return label
    if not ip.is_global:
        return "not globally routable"
    return None


def parse_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address, also in the legacy numeric forms resolvers accept, else ``None``.

    ``127.1``, ``2130706433``, ``0x7f.0.0.1`` and ``0177.0.0.1`` all mean 127.0.0.1 to ``inet_aton``
    (and so to ``getaddrinfo``); reading them here keeps the check from trusting a resolver's quirks.
    """
    host = host.strip("[]").removesuffix(".")
    try:
        return ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _normal_host(host: str) -> str:
    return host.lower().removesuffix(".")


@dataclass(frozen=True, slots=True)
class _AllowRule:
    network: IPNetwork | None
    host: str | None
    port: int | None

    def matches(self, ip: IPAddress, host: str | None, port: int | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip in self.network
        return host is not None and _normal_host(host) == self.host


def _parse_allow_entry(entry: str) -> _AllowRule:
    """``127.0.0.0/8``, ``10.1.2.3``, ``::1``, ``[::1]:8080``, ``127.0.0.1:8080``, ``localhost[:8080]``."""
    text = entry.strip()
    if "://" in text:
        raise ValueError(f"allow entry {entry!r}: expected a host name, IP address or network, not a URL")
    if "/" in text:
        try:
            return _AllowRule(ip_network(text, strict=False), None, None)
        except ValueError as exc:
            raise ValueError(f"allow entry {entry!r}: not a network ({exc})") from exc
    host, port = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"allow entry {entry!r}: expected [IPv6] or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        port_text = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ValueError(f"allow entry {entry!r}: bad port {port_text!r}")
        port = int(port_text)
    try:
        ip = ip_address(host)
    except ValueError:
        name = _normal_host(host)
        if not name or not all(c.isalnum() or c in "-_." for c in name) or not name.isascii():
            raise ValueError(f"allow entry {entry!r}: not a host name, IP address or network") from None
        return _AllowRule(None, name, port)
    return _AllowRule(ip_network(ip), None, port)


@dataclass(frozen=True)
class AddressPolicy:
    """Which non-public addresses a guarded client may still connect to. The default blocks all of them."""

    allow: tuple[str, ...] = ()
    """Entries that open a blocked address on purpose: a host name as written in URLs (``"localhost"``,
    matched on the name, whatever it resolves to), an IP address (``"127.0.0.1"``, ``"::1"``) or a CIDR
    network (``"127.0.0.0/8"``), which match the resolved address whatever name led to it. A host name or
    IP may carry a port (``"127.0.0.1:8080"``, ``"[::1]:8080"``, ``"localhost:8080"``) to open only that
    port. Checked when the policy is built: a malformed entry raises ``ValueError``."""
    _rules: tuple[_AllowRule, ...] = field(init=False, repr=False, compare=False)
    """The parsed ``allow`` entries."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(self.allow))
        object.__setattr__(self, "_rules", tuple(_parse_allow_entry(entry) for entry in self.allow))

    @classmethod
    def from_strings(cls, entries: Iterable[str]) -> AddressPolicy:
        """A policy from settings-style strings; blank entries are skipped."""
        return cls(tuple(entry.strip() for entry in entries if entry.strip()))

    def blocked_reason(self, ip: IPAddress | str, *, host: str | None = None, port: int | None = None) -> str | None:
        """Why a connection to ``ip`` (reached as ``host:port``) is refused, or ``None`` if it may go ahead."""
        address = ip_address(ip) if isinstance(ip, str) else ip
        reason = special_reason(address)
        if reason is None or any(rule.matches(address, host, port) for rule in self._rules):
            return None
        return reason


class BlockedAddressError(FetchError):
    """:func:`check_url` refused a URL before any request was made."""


class BlockedConnectError(httpcore.ConnectError):
    """:class:`GuardedBackend` refused to connect; httpx re-raises it as ``httpx.ConnectError``."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"blocked address {address} ({reason}) for host {host}")
        self.host = host
        self.address = address
        self.reason = reason


def check_url(url: str | httpx.URL, policy: AddressPolicy) -> None:
    """Refuse a URL that must never be fetched, before any request: raise :class:`BlockedAddressError`.

    Parses the URL as httpx will and checks the scheme, credentials (``http://user@host/`` and the
    ``http://127.0.0.1:80@evil.example/`` confusion trick), and host literals, including numeric IPv4
    spellings and the ``localhost`` names. It does no DNS: a name that resolves to a blocked address is
    caught when connecting, by :class:`GuardedBackend`.
    """
    text = str(url)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise BlockedAddressError(text, f"blocked: invalid URL ({exc})") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise BlockedAddressError(text, f"blocked scheme {parsed.scheme!r} (only http and https are fetched)")
    if parsed.userinfo:
        raise BlockedAddressError(text, "blocked: credentials in the URL (user info before '@')")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise BlockedAddressError(text, "blocked: URL has no host")
    ip = parse_ip(host)
    name = _normal_host(host)
    if ip is None and (name == "localhost" or name.endswith(".localhost")):
        ip = IPv4Address("127.0.0.1")  # RFC 6761: these names always mean loopback
    if ip is not None:
        reason = policy.blocked_reason(ip, host=host, port=parsed.port or (443 if parsed.scheme == "https" else 80))
        if reason is not None:
            raise BlockedAddressError(text, f"blocked address {ip} ({reason})")


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order, without duplicates."""
    # bytes skip anyio's IDNA pass: httpcore hands over the already-encoded ASCII host.
    answers = await anyio.getaddrinfo(host.encode("ascii"), port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that checks every address and connects only to the checked one."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver | None = None,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver or system_resolver
        self._backend = backend or httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        literal = parse_ip(host)
        if literal is not None:
            return [literal]
        try:
            answers = await self._resolve(host, port)
            addresses = [ip_address(answer) for answer in answers]
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        except ValueError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: resolver gave a non-address ({exc})") from exc
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._addresses(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        # Refuse if any answer is blocked, not just the first: which one the connect would use is not ours
        # to predict, and a name that mixes public and private answers is suspect anyway.
        for address in addresses:
            reason = self._policy.blocked_reason(address, host=host, port=port)
            if reason is not None:
                raise BlockedConnectError(host, str(address), reason)
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                # An IP literal: the inner backend connects to it without another lookup (the pinning).
                return await self._backend.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # _addresses never returns an empty list
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def guarded_transport(
    policy: AddressPolicy,
    *,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | bool = True,
    http1: bool = True,
    http2: bool = False,
    limits: httpx.Limits | None = None,
    retries: int = 0,
    local_address: str | None = None,
    socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
) -> httpx.AsyncHTTPTransport:
    """An ``httpx.AsyncHTTPTransport`` whose every connection goes through a :class:`GuardedBackend`.

    The keyword arguments mean what they mean to ``httpx.AsyncHTTPTransport``; ``resolver`` replaces the
    system resolver (tests map names to addresses with it). There is deliberately no ``proxy``: a proxy
    would connect past the guard.
    """
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's default
    ssl_context = httpx.create_ssl_context(verify=verify)
    transport = httpx.AsyncHTTPTransport(
        verify=ssl_context,
        http1=http1,
        http2=http2,
        limits=limits,
        retries=retries,
        local_address=local_address,
        socket_options=socket_options,
    )
    # httpx has no public way to give its transport a network backend; the pool it builds is replaced by
    # the same pool plus the backend. Only this attribute is internal, and the test suite exercises it.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=http1,
        http2=http2,
        retries=retries,
        local_address=local_address,
        network_backend=GuardedBackend(policy, resolver=resolver),
        socket_options=socket_options,
    )
    return transport
