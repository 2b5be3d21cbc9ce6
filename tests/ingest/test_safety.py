"""The SSRF guard: every payload is refused before a connection is made, allow-listed hosts still work.

The targets are real HTTP servers on loopback that count the connections they accept, and the inner
network backend counts connection attempts, so "0 fetched" is measured, not assumed. Host names go
through a fake resolver: nothing here touches real DNS or the internet.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any, ClassVar, NamedTuple
from urllib.parse import parse_qs, urlsplit

import httpcore
import httpx
import pytest

from citeline.ingest import Crawler, CrawlLimits, FetchFailure, make_client
from citeline.ingest._exceptions import FetchError
from citeline.ingest.safety import (
    AddressPolicy,
    BlockedAddressError,
    BlockedConnectError,
    check_url,
    guarded_transport,
    parse_ip,
    system_resolver,
)

PAGE = b"<html><body><p>served</p></body></html>"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: CountingServer

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/go":  # /go?to=URL redirects to URL
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


class CountingServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP(S) server that counts accepted TCP connections and requests."""

    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tls = tls
        self.connections = 0
        self.requests: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        self.connections += 1
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True)
        return sock, address


@contextlib.contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[CountingServer]:
    server = CountingServer(tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class FakeDNS:
    """Maps test names to addresses; only ``localhost`` goes to the system resolver (/etc/hosts)."""

    NAMES: ClassVar[dict[str, list[str]]] = {
        "evil.example": ["127.0.0.1"],
        "metadata.google.internal": ["169.254.169.254"],
        "mixed.example": ["93.184.215.14", "127.0.0.1"],  # one public, one private answer
        "v6.example": ["::1"],
        "pinned.example": ["127.0.0.1"],
        "site.example": ["127.0.0.1"],
    }

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host == "localhost":
            return await system_resolver(host, port)
        if host in self.NAMES:
            return self.NAMES[host]
        raise socket.gaierror(socket.EAI_NONAME, f"{host} is not a test name")


@pytest.fixture(scope="module")
def target() -> Iterator[CountingServer]:
    """The server the blocked payloads aim at; it must never see a connection."""
    with serving() as server:
        yield server


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connection attempt that gets past the guard to the real socket layer."""
    calls: list[tuple[str, int]] = []
    original = httpcore.AnyIOBackend.connect_tcp

    async def counting(self: httpcore.AnyIOBackend, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        calls.append((host, port))
        return await original(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", counting)
    return calls


def client(policy: AddressPolicy, dns: FakeDNS, **transport: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=guarded_transport(policy, resolver=dns, **transport), follow_redirects=True, timeout=3
    )


class Payload(NamedTuple):
    url: str
    raises: type[Exception] = httpx.ConnectError
    """What ``AsyncClient.get`` raises: the guard's ``ConnectError``, or httpx's own refusal."""
    literal: bool = True
    """Whether ``check_url`` can refuse it without DNS (False: only a resolved name reveals it)."""


P = "{port}"  # the target server's port, filled in by the tests
PAYLOADS = [
    Payload(f"http://127.0.0.1:{P}/"),
    Payload(f"http://localhost:{P}/"),
    Payload(f"http://LOCALHOST:{P}/"),
    Payload(f"http://127.1:{P}/"),
    Payload(f"http://2130706433:{P}/"),
    Payload(f"http://0177.0.0.1:{P}/", raises=httpx.InvalidURL),  # httpx refuses octal outright
    Payload(f"http://0x7f.0.0.1:{P}/"),
    Payload(f"http://0x7f000001:{P}/"),
    Payload(f"http://0x7f.1:{P}/"),
    Payload(f"http://017700000001:{P}/"),
    Payload(f"http://127.0.0.1.:{P}/"),
    Payload(f"http://127.0.0.2:{P}/"),
    Payload(f"http://127.255.255.254:{P}/"),
    Payload(f"http://[::1]:{P}/"),
    Payload(f"http://[::ffff:127.0.0.1]:{P}/"),
    Payload(f"http://[::ffff:7f00:1]:{P}/"),
    Payload(f"http://[0:0:0:0:0:ffff:127.0.0.1]:{P}/"),
    Payload(f"http://[::ffff:0:127.0.0.1]:{P}/"),  # IPv4-translated
    Payload(f"http://[::127.0.0.1]:{P}/"),  # IPv4-compatible
    Payload(f"http://[64:ff9b::7f00:1]:{P}/"),  # NAT64
    Payload(f"http://[2002:7f00:1::]:{P}/"),  # 6to4
    Payload("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"),  # Teredo, client 127.0.0.1
    Payload(f"http://0.0.0.0:{P}/"),  # Linux routes it to loopback
    Payload(f"http://0:{P}/"),
    Payload(f"http://[::]:{P}/"),
    Payload("http://10.0.0.1/"),
    Payload("http://172.16.0.1/"),
    Payload("http://192.168.1.1/"),
    Payload("http://169.254.169.254/latest/meta-data/"),
    Payload("http://[::ffff:a9fe:a9fe]/latest/meta-data/"),
    Payload("http://[fd00:ec2::254]/latest/meta-data/"),
    Payload("http://100.64.0.1/"),
    Payload("http://100.100.100.200/latest/meta-data/"),  # Alibaba's metadata, in CGNAT space
    Payload("http://224.0.0.1/"),
    Payload("http://240.0.0.1/"),
    Payload("http://255.255.255.255/"),
    Payload("http://192.0.0.170/"),
    Payload("http://198.18.0.1/"),
    Payload("http://192.0.2.1/"),
    Payload("http://[fe80::1]/"),
    Payload("http://[fe80::1%25eth0]/"),
    Payload("http://[fc00::1]/"),
    Payload("http://[fec0::1]/"),
    Payload("http://[ff02::1]/"),
    Payload("http://[2001:db8::1]/"),
    Payload("http://[64:ff9b:1::a00:1]/"),
    Payload(f"hTTp://127.0.0.1:{P}/"),
    Payload(f"https://127.0.0.1:{P}/"),
    Payload(f"http://user@127.0.0.1:{P}/"),
    Payload(f"http://user:pass@localhost:{P}/"),
    Payload(f"http://127.0.0.1:{P}#@example.com/"),  # the fragment starts before the "@"
    Payload(f"http://127.0.0.1:{P}@evil.example:{P}/"),  # host is evil.example; userinfo refused
    Payload(f"http://127.0.0.1:{P}\\@evil.example:{P}/"),  # httpx, unlike browsers, reads host evil.example
    Payload(f"http://evil.example:{P}/", literal=False),
    Payload("http://metadata.google.internal/computeMetadata/v1/", literal=False),
    Payload(f"http://mixed.example:{P}/", literal=False),
    Payload(f"http://v6.example:{P}/", literal=False),
    Payload("file:///etc/passwd", raises=httpx.UnsupportedProtocol),
    Payload("ftp://127.0.0.1/", raises=httpx.UnsupportedProtocol),
    Payload(f"gopher://127.0.0.1:{P}/_GET%20/%20HTTP/1.0%0d%0a%0d%0a", raises=httpx.UnsupportedProtocol),
    Payload("dict://127.0.0.1:11211/stat", raises=httpx.UnsupportedProtocol),
    Payload("ldap://127.0.0.1/", raises=httpx.UnsupportedProtocol),
    Payload("data:text/html,<h1>hi</h1>", raises=httpx.UnsupportedProtocol),
    Payload(f"//127.0.0.1:{P}/", raises=httpx.UnsupportedProtocol),
]


def test_payload_count() -> None:
    assert len(PAYLOADS) >= 40
    assert len({p.url for p in PAYLOADS}) == len(PAYLOADS)


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.url for p in PAYLOADS])
async def test_payload_is_never_fetched(
    payload: Payload, target: CountingServer, dns: FakeDNS, connects: list[tuple[str, int]]
) -> None:
    url = payload.url.format(port=target.port)
    async with client(AddressPolicy(), dns) as guarded:
        with pytest.raises(payload.raises) as info:
            await guarded.get(url)
    if payload.raises is httpx.ConnectError:
        assert str(info.value).startswith("blocked address ")
        assert isinstance(info.value.__cause__, BlockedConnectError)
    assert connects == []
    assert target.connections == 0
    assert target.requests == []


@pytest.mark.parametrize("payload", PAYLOADS, ids=[p.url for p in PAYLOADS])
def test_check_url(payload: Payload) -> None:
    url = payload.url.format(port=8080)
    if not payload.literal:
        check_url(url, AddressPolicy())  # only the connect-time check can know where a name leads
        return
    with pytest.raises(BlockedAddressError) as info:
        check_url(url, AddressPolicy())
    assert isinstance(info.value, FetchError)
    assert info.value.reason.startswith("blocked")


async def test_blocked_message_names_address_reason_and_host(target: CountingServer, dns: FakeDNS) -> None:
    async with client(AddressPolicy(), dns) as guarded:
        with pytest.raises(httpx.ConnectError) as info:
            await guarded.get(f"http://evil.example:{target.port}/")
    assert str(info.value) == "blocked address 127.0.0.1 (loopback) for host evil.example"
    cause = info.value.__cause__
    assert isinstance(cause, BlockedConnectError)
    assert (cause.host, cause.address, cause.reason) == ("evil.example", "127.0.0.1", "loopback")


async def test_redirects_are_checked_on_every_hop(dns: FakeDNS) -> None:
    with serving() as allowed, serving() as other:
        policy = AddressPolicy.from_strings([f"127.0.0.1:{allowed.port}"])
        targets = [
            f"http://127.0.0.1:{other.port}/",  # same address, a port the allow entry does not open
            f"http://localhost:{other.port}/",
            f"http://127.0.0.2:{allowed.port}/",  # another loopback address
            f"http://[::1]:{allowed.port}/",
            f"http://evil.example:{other.port}/",  # a name for 127.0.0.1, on the wrong port
            "http://169.254.169.254/latest/meta-data/",
        ]
        async with client(policy, dns) as guarded:
            ok = await guarded.get(f"http://127.0.0.1:{allowed.port}/go?to=/page")
            assert ok.status_code == 200
            assert ok.url.path == "/page"
            for to in targets:
                with pytest.raises(httpx.ConnectError, match=r"^blocked address "):
                    await guarded.get(f"http://127.0.0.1:{allowed.port}/go", params={"to": to})
            with pytest.raises(httpx.UnsupportedProtocol):
                await guarded.get(f"http://127.0.0.1:{allowed.port}/go", params={"to": "file:///etc/passwd"})
            # An IP entry opens the address whatever name leads to it.
            via_name = await guarded.get(
                f"http://127.0.0.1:{allowed.port}/go", params={"to": f"http://evil.example:{allowed.port}/page"}
            )
            assert via_name.status_code == 200
        assert len(allowed.requests) == 2 + len(targets) + 1 + 2  # each blocked redirect served, nothing after it
        assert other.connections == 0


async def test_crawler_reports_a_blocked_redirect_as_a_failure(dns: FakeDNS) -> None:
    with serving() as allowed, serving() as other:
        policy = AddressPolicy.from_strings([f"127.0.0.1:{allowed.port}"])
        transport = guarded_transport(policy, resolver=dns)
        http_client = make_client(
            user_agent="citeline-test",
            connect_timeout=2,
            read_timeout=2,
            max_redirects=3,
            concurrency=2,
            transport=transport,
        )
        crawler = Crawler(http_client, CrawlLimits(max_pages=5), policy=policy)
        seed = f"http://127.0.0.1:{allowed.port}/go?to=http://127.0.0.1:{other.port}/"
        async with http_client:
            results = [item async for item in crawler.crawl([seed])]
    assert len(results) == 1
    failure = results[0]
    assert isinstance(failure, FetchFailure)
    # The hop is refused before any request, as the seed would be (a name is refused on connecting).
    assert failure.reason == f"redirected to http://127.0.0.1:{other.port}/: blocked address 127.0.0.1 (loopback)"
    assert failure.kind == "blocked"
    assert other.connections == 0


@pytest.mark.parametrize("allow", ["127.0.0.1:{port}", "127.0.0.1", "127.0.0.0/8", "localhost", "localhost:{port}"])
async def test_allow_listed_loopback_is_fetched(allow: str, dns: FakeDNS) -> None:
    with serving() as server:
        host = "localhost" if allow.startswith("localhost") else "127.0.0.1"
        policy = AddressPolicy.from_strings([allow.format(port=server.port)])
        async with client(policy, dns) as guarded:
            response = await guarded.get(f"http://{host}:{server.port}/")
    assert response.status_code == 200
    assert response.content == PAGE
    assert server.requests == ["/"]


async def test_connection_is_pinned_to_the_checked_address(dns: FakeDNS, connects: list[tuple[str, int]]) -> None:
    """The name is resolved once, by the guard, and the socket is opened to the literal it checked.

    pinned.example exists only in the fake resolver: had anything looked it up again, the request
    would have failed.
    """
    with serving() as server:
        policy = AddressPolicy.from_strings([f"127.0.0.1:{server.port}"])
        async with client(policy, dns) as guarded:
            response = await guarded.get(f"http://pinned.example:{server.port}/")
    assert response.status_code == 200
    assert dns.calls == ["pinned.example"]
    assert connects == [("127.0.0.1", server.port)]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for site.example only (no IP address in it)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=site.example",
             "-addext", "subjectAltName=DNS:site.example"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate: {exc}")
    return cert, key


async def test_https_verifies_the_host_name_not_the_pinned_address(
    certificate: tuple[Path, Path], dns: FakeDNS
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(cert))
    with serving(server_tls) as server:
        policy = AddressPolicy.from_strings(["site.example"])
        async with client(policy, dns, verify=trust) as guarded:
            response = await guarded.get(f"https://site.example:{server.port}/")
    assert response.status_code == 200
    assert response.content == PAGE
    assert dns.calls == ["site.example"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("198.19.255.255", "benchmarking"),
        ("203.0.113.9", "documentation"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fc00::1", "unique local (private)"),
        ("::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1: private"),
        ("64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254: link-local"),
        ("2002:a00:1::1", "6to4 10.0.0.1: private"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo client 127.0.0.1: loopback"),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo"),  # public ends, but Teredo is not global
    ],
)
def test_blocked_reason_names_the_range(address: str, reason: str) -> None:
    assert AddressPolicy().blocked_reason(address) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"]
)
def test_public_addresses_pass(address: str) -> None:
    assert AddressPolicy().blocked_reason(address) is None
    assert AddressPolicy().blocked_reason(ip_address(address)) is None


def test_public_urls_pass_check_url() -> None:
    check_url("https://docs.python.org/3/library/", AddressPolicy())
    check_url("http://93.184.215.14:8080/index.html", AddressPolicy())
    check_url("https://[2606:4700::1111]/", AddressPolicy())


def test_allow_entries() -> None:
    policy = AddressPolicy.from_strings(["localhost:8080", "10.0.0.0/8", "[::1]:9000", " ", "192.168.1.5"])
    assert policy.allow == ("localhost:8080", "10.0.0.0/8", "[::1]:9000", "192.168.1.5")
    assert policy.blocked_reason("127.0.0.1", host="localhost", port=8080) is None
    assert policy.blocked_reason("127.0.0.1", host="localhost", port=8081) == "loopback"
    assert policy.blocked_reason("127.0.0.1", host="evil.example", port=8080) == "loopback"
    assert policy.blocked_reason("10.9.8.7", host="anything.example", port=1) is None
    assert policy.blocked_reason("::1", port=9000) is None
    assert policy.blocked_reason("::1", port=9001) == "loopback"
    assert policy.blocked_reason("192.168.1.5") is None
    assert policy.blocked_reason("192.168.1.6") == "private"
    assert policy.blocked_reason("::ffff:10.0.0.1") is not None  # an allowed v4 network does not open its v6 forms
    check_url("http://localhost:8080/", policy)
    with pytest.raises(BlockedAddressError):
        check_url("http://localhost:8081/", policy)


@pytest.mark.parametrize(
    "entry", ["http://localhost/", "[::1", "[::1]x", "a b", "1.2.3.4:0", "host:99999", "10.0.0.0/33"]
)
def test_malformed_allow_entry_is_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="allow entry"):
        AddressPolicy.from_strings([entry])


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.0.0.1", "127.0.0.1"),
     ("0x7f000001", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"), ("[::1]", "::1"), ("cafe.example", None),
     ("deadbeef", None)],
)  # fmt: skip
def test_parse_ip_reads_numeric_spellings(host: str, expected: str | None) -> None:
    parsed = parse_ip(host)
    assert (None if parsed is None else str(parsed)) == expected
