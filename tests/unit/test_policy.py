"""The input URL policy: schemes, allow-list, address classes, wrappers, file: URLs.

Every host name goes through a stub resolver; nothing here opens a connection.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from jobrunner.errors import InputRefused
from jobrunner.policy import UrlPolicy, address_problem, parse_ip

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


class StubResolver:
    """Resolves names from a table and records every lookup."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise OSError(f"stub resolver: unknown host {host}")
        return list(self.table[host])


def policy(
    allow: Iterable[str] = (), table: dict[str, list[str]] | None = None, files: Path | None = None
) -> UrlPolicy:
    return UrlPolicy(allow, allow_file_inputs=files, resolver=StubResolver(table))


def check(p: UrlPolicy, url: str) -> None:
    """Static check, then resolution with address checks (what a fetch does)."""
    p.resolve(p.check_url(url))


def refused(p: UrlPolicy, url: str) -> str:
    with pytest.raises(InputRefused) as info:
        check(p, url)
    return info.value.message


# -- address classes ---------------------------------------------------------------

NON_PUBLIC = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("192.0.2.1", "private"),  # TEST-NET-1
    ("198.18.0.1", "benchmarking"),
    ("203.0.113.9", "documentation"),
    ("192.88.99.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("5f00::1", "reserved"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("::a00:1", "outside global unicast"),  # deprecated IPv4-compatible form
    ("fec0::1", "site-local"),
]


@pytest.mark.parametrize(("address", "word"), NON_PUBLIC)
def test_address_classes_are_not_public(address: str, word: str) -> None:
    """Each special-purpose address class is recognised and named in the reason."""
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None
    assert word in problem


@pytest.mark.parametrize("address", [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6])
def test_public_addresses_pass(address: str) -> None:
    """Globally routable addresses have no problem."""
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("address", "word"), NON_PUBLIC)
def test_non_public_address_literals_refused_without_allow_list(address: str, word: str) -> None:
    """A URL whose host is a non-public IP literal is refused, naming address, rule and fix."""
    host = f"[{address}]" if ":" in address else address
    message = refused(policy(), f"http://{host}/data.json")
    assert f"http://{host}/data.json" in message
    assert word in message
    assert "--allow-host" in message


@pytest.mark.parametrize(("address", "word"), NON_PUBLIC)
def test_names_resolving_to_non_public_addresses_refused(address: str, word: str) -> None:
    """A host name is checked on its resolved address: a public name pointing inward is refused."""
    message = refused(policy(table={"inputs.example": [address]}), "https://inputs.example/x")
    assert "inputs.example" in message
    assert address in message
    assert word in message


def test_every_resolved_address_is_checked() -> None:
    """One non-public address among several resolved ones refuses the host."""
    p = policy(table={"mixed.example": [PUBLIC_V4, PUBLIC_V6, "10.0.0.7"]})
    message = refused(p, "http://mixed.example/")
    assert "10.0.0.7" in message


def test_public_name_resolves_to_checked_addresses() -> None:
    """A name with only public addresses passes, and resolve() returns those addresses."""
    p = policy(table={"inputs.example": [PUBLIC_V4, PUBLIC_V6]})
    addresses = p.resolve(p.check_url("https://inputs.example:8443/x"))
    assert [str(a) for a in addresses] == [PUBLIC_V4, PUBLIC_V6]


def test_resolver_gets_host_and_port() -> None:
    """The resolver is asked for the URL's host and (default or explicit) port."""
    resolver = StubResolver({"a.example": [PUBLIC_V4]})
    p = UrlPolicy(resolver=resolver)
    p.resolve(p.check_url("https://a.example/"))
    p.resolve(p.check_url("http://A.Example.:8080/"))
    assert resolver.calls == [("a.example", 443), ("a.example", 8080)]


def test_ip_literal_is_not_resolved() -> None:
    """An IP host is checked as it is, without asking the resolver."""
    resolver = StubResolver()
    p = UrlPolicy(resolver=resolver)
    assert [str(a) for a in p.resolve(p.check_url(f"http://{PUBLIC_V4}/"))] == [PUBLIC_V4]
    assert resolver.calls == []


def test_unresolvable_name_is_oserror_not_refusal() -> None:
    """A name that does not resolve raises OSError (a retryable fetch failure), not a refusal."""
    p = policy()
    with pytest.raises(OSError):
        p.resolve(p.check_url("http://nowhere.example/"))


# -- IPv6 wrappers of IPv4 -----------------------------------------------------------

WRAPPED = [
    ("::ffff:127.0.0.1", "IPv4-mapped", "loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped", "private"),
    ("::ffff:169.254.169.254", "IPv4-mapped", "metadata"),
    ("64:ff9b::7f00:1", "NAT64", "loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64", "metadata"),
    ("64:ff9b::c0a8:101", "NAT64", "private"),
    ("2002:7f00:1::", "6to4", "loopback"),
    ("2002:a00:1::1", "6to4", "private"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 (obfuscated: bits inverted)
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo client", "loopback"),
]


@pytest.mark.parametrize(("address", "kind", "word"), WRAPPED)
def test_ipv6_wrappers_are_unwrapped(address: str, kind: str, word: str) -> None:
    """IPv4-mapped, NAT64, 6to4 and Teredo addresses are judged by the IPv4 they carry."""
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None
    assert kind in problem
    assert word in problem
    assert "refused" in refused(policy(), f"http://[{address}]/")


def test_wrapper_of_public_ipv4_is_public() -> None:
    """A NAT64 or 6to4 address carrying a public IPv4 address is allowed, on every Python.

    Debian's patched 3.11.2 and Python 3.13 count all of 6to4's 2002::/16 as
    private in ``ipaddress``; the policy's own tables must not follow them.
    """
    assert address_problem(ipaddress.ip_address("64:ff9b::5db8:d822")) is None
    assert address_problem(ipaddress.ip_address("2002:5db8:d822::1")) is None
    assert address_problem(ipaddress.ip_address("::ffff:93.184.216.34")) is None


def test_mapped_address_on_allowed_network_passes() -> None:
    """A CIDR entry allows an IPv4-mapped form of its addresses too."""
    p = policy(["127.0.0.0/8"], table={"local.test": ["::ffff:127.0.0.1"]})
    check(p, "http://local.test/")


# -- numeric host spellings --------------------------------------------------------

NUMERIC = [
    "2130706433",  # 127.0.0.1 as one 32-bit number
    "0x7f.1",
    "0x7f000001",
    "127.1",
    "127.0.1",
    "0177.0.0.1",
    "0177.1",
    "127.000.000.001",
    "017700000001",
]


@pytest.mark.parametrize("host", NUMERIC)
def test_numeric_forms_are_loopback(host: str) -> None:
    """Legacy inet_aton spellings of 127.0.0.1 are recognised as loopback and refused."""
    assert parse_ip(host) == ipaddress.IPv4Address("127.0.0.1")
    message = refused(policy(), f"http://{host}/")
    assert "loopback" in message
    assert "127.0.0.1" in message


@pytest.mark.parametrize("host", NUMERIC)
def test_numeric_forms_allowed_by_cidr(host: str) -> None:
    """A numeric spelling of an allowed address passes (it is the same address)."""
    check(policy(["127.0.0.0/8"]), f"http://{host}:8080/")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
    ],
)
def test_parse_ip_normalises(host: str, expected: str) -> None:
    """parse_ip maps every numeric spelling to the address inet_aton would use."""
    assert parse_ip(host) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    "host", ["example.com", "1.2.3.4.5", "08.0.0.1", "256.256.256.256", "4294967296", "0x", "1e3"]
)
def test_parse_ip_leaves_names_alone(host: str) -> None:
    """Strings inet_aton would reject are host names, to be resolved and checked."""
    if host == "0x":
        assert parse_ip(host) == ipaddress.IPv4Address("0.0.0.0")  # glibc accepts "0x" as 0
    else:
        assert parse_ip(host) is None


# -- allow-list ----------------------------------------------------------------------


def test_allow_list_exact_host() -> None:
    """An exact entry allows that host (case and trailing dot ignored) and no other."""
    p = policy(
        ["Data.Example.org"],
        table={"data.example.org": [PUBLIC_V4], "other.example.org": [PUBLIC_V4]},
    )
    check(p, "https://data.example.org/in.json")
    check(p, "https://DATA.example.org./in.json")
    message = refused(p, "https://other.example.org/in.json")
    assert "not on the allow-list" in message
    assert "data.example.org" in message


def test_allow_list_suffix() -> None:
    """A *.suffix entry allows names below the suffix, not the suffix itself nor look-alikes."""
    table = {
        n: [PUBLIC_V4]
        for n in ("a.example.org", "b.c.example.org", "example.org", "badexample.org")
    }
    p = policy(["*.example.org"], table=table)
    check(p, "http://a.example.org/")
    check(p, "http://b.c.example.org/")
    refused(p, "http://example.org/")
    refused(p, "http://badexample.org/")


def test_allow_list_suffix_does_not_open_private_addresses() -> None:
    """A wildcard admits names at public addresses only; listing the network opens it."""
    table = {"db.corp.example": ["10.1.2.3"]}
    message = refused(policy(["*.corp.example"], table=table), "http://db.corp.example/")
    assert "private" in message
    check(policy(["*.corp.example", "10.0.0.0/8"], table=table), "http://db.corp.example/")


def test_allow_list_cidr() -> None:
    """A CIDR entry allows addresses inside it, literal or resolved, and nothing outside."""
    table = {"in.test": ["192.168.5.7"], "out.test": ["192.168.6.7"]}
    p = policy(["192.168.5.0/24"], table=table)
    check(p, "http://192.168.5.200/")
    check(p, "http://in.test/")
    refused(p, "http://192.168.6.1/")
    refused(p, "http://out.test/")
    refused(p, f"http://{PUBLIC_V4}/")  # public, but the allow-list says otherwise


def test_allow_list_ipv6_cidr() -> None:
    """IPv6 networks work like IPv4 ones."""
    p = policy(["fd00:1::/32"], table={"v6.test": ["fd00:1::5"]})
    check(p, "http://[fd00:1::9]/")
    check(p, "http://v6.test/")
    refused(p, "http://[fd00:2::9]/")


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.0/8", "localhost"])
def test_allow_list_opens_loopback(entry: str) -> None:
    """--allow-host 127.0.0.1, 127.0.0.0/8 or localhost allows loopback inputs (tests, demo)."""
    p = policy([entry], table={"localhost": ["127.0.0.1"]})
    check(p, "http://localhost:8000/in.json")
    if entry != "localhost":
        check(p, "http://127.0.0.1:8000/in.json")


def test_allowed_address_admits_any_name_resolving_to_it() -> None:
    """With 127.0.0.1 allowed, a made-up name resolving there passes (DNS pinning test setup)."""
    check(policy(["127.0.0.1"], table={"inputs.test": ["127.0.0.1"]}), "http://inputs.test/")


def test_exact_name_opens_its_private_addresses_only() -> None:
    """Listing a name allows its non-public addresses; other names stay refused."""
    table = {"meters.lan": ["10.0.0.5"], "other.lan": ["10.0.0.6"]}
    p = policy(["meters.lan"], table=table)
    check(p, "http://meters.lan/")
    refused(p, "http://other.lan/")


def test_allow_list_does_not_open_metadata_by_other_names() -> None:
    """Allowing loopback does not allow the metadata address."""
    p = policy(["127.0.0.0/8"], table={"md.test": ["169.254.169.254"]})
    message = refused(p, "http://md.test/latest/meta-data/")
    assert "metadata" in message


def test_static_check_refuses_unlisted_name_before_resolving() -> None:
    """With only name entries, an unlisted name is refused without a DNS lookup."""
    resolver = StubResolver({"x.test": [PUBLIC_V4]})
    p = UrlPolicy(["allowed.test"], resolver=resolver)
    with pytest.raises(InputRefused):
        p.check_url("http://x.test/")
    assert resolver.calls == []


@pytest.mark.parametrize("entry", ["*.", "a.*.b", "10.0.0.0/33", "ho st"])
def test_invalid_allow_list_entries(entry: str) -> None:
    """Malformed allow-list entries are configuration errors."""
    with pytest.raises(ValueError, match="allow_host"):
        UrlPolicy([entry])


# -- schemes and URL forms -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "gopher://example.com/",
        "javascript:alert(1)",
        "data:text/plain,hi",
        "dict://example.com:11211/",
        "//example.com/x",
    ],
)
def test_other_schemes_refused(url: str) -> None:
    """Only http and https are fetched over the network."""
    message = refused(policy(table={"example.com": [PUBLIC_V4]}), url)
    assert "scheme" in message
    assert "http or https" in message


def test_http_and_https_allowed() -> None:
    """http and https (any case) are allowed for public hosts."""
    p = policy(table={"example.com": [PUBLIC_V4]})
    check(p, "http://example.com/")
    check(p, "HTTPS://example.com/")


def test_file_scheme_refused_as_redirect_target(tmp_path: Path) -> None:
    """A redirect to file: is refused even when file inputs are enabled."""
    p = policy(files=tmp_path)
    with pytest.raises(InputRefused, match="scheme 'file'"):
        p.check_url(f"file://{tmp_path}/a.json", redirect=True)


def test_credentials_refused() -> None:
    """URLs with user:password@ are refused, and the password is not repeated."""
    message = refused(
        policy(table={"example.com": [PUBLIC_V4]}), "https://user:s3cret@example.com/"
    )
    assert "credentials" in message
    assert "s3cret" not in message


def test_bad_port_refused() -> None:
    """A URL that does not parse is refused with the reason."""
    assert "not a valid URL" in refused(policy(), "http://example.com:99999/")


# -- file: URLs ------------------------------------------------------------------------


def test_file_urls_disabled_by_default(tmp_path: Path) -> None:
    """Without allow_file_inputs, file: URLs are refused with the setting to use."""
    with pytest.raises(InputRefused, match="--allow-file-inputs"):
        policy().file_path(f"file://{tmp_path}/x.json")


def test_file_url_inside_directory(tmp_path: Path) -> None:
    """A file below the directory maps to its real path (percent-escapes decoded)."""
    (tmp_path / "sub").mkdir()
    target = tmp_path / "sub" / "my data.json"
    target.write_text("{}")
    p = policy(files=tmp_path)
    assert p.file_path(f"file://{tmp_path}/sub/my%20data.json") == target.resolve()
    assert p.file_path(f"file://localhost{tmp_path}/sub/my%20data.json") == target.resolve()


def test_file_url_outside_directory(tmp_path: Path) -> None:
    """Paths outside the directory, including via '..', are refused."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    p = policy(files=inputs)
    for url in (
        f"file://{tmp_path}/secret.txt",
        f"file://{inputs}/../secret.txt",
        f"file://{inputs}/%2e%2e/secret.txt",
        "file:///etc/passwd",
    ):
        with pytest.raises(InputRefused, match="outside the allowed directory"):
            p.file_path(url)


def test_file_url_prefix_sibling_refused(tmp_path: Path) -> None:
    """A sibling directory sharing the prefix (inputs-evil vs inputs) is outside."""
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs-evil").mkdir()
    (tmp_path / "inputs-evil" / "x").write_text("x")
    with pytest.raises(InputRefused, match="outside"):
        policy(files=tmp_path / "inputs").file_path(f"file://{tmp_path}/inputs-evil/x")


def test_file_url_symlink_escape_refused(tmp_path: Path) -> None:
    """A symlink inside the directory pointing outside is refused (the real path counts)."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    os.symlink(tmp_path / "secret.txt", inputs / "link.txt")
    os.symlink(tmp_path, inputs / "dirlink")
    p = policy(files=inputs)
    for url in (f"file://{inputs}/link.txt", f"file://{inputs}/dirlink/secret.txt"):
        with pytest.raises(InputRefused, match="symlinks are resolved"):
            p.file_path(url)


def test_file_url_symlink_inside_allowed(tmp_path: Path) -> None:
    """A symlink that stays inside the directory is fine."""
    (tmp_path / "real.json").write_text("{}")
    os.symlink(tmp_path / "real.json", tmp_path / "alias.json")
    assert (
        policy(files=tmp_path).file_path(f"file://{tmp_path}/alias.json")
        == (tmp_path / "real.json").resolve()
    )


def test_file_url_with_remote_host_refused(tmp_path: Path) -> None:
    """file://otherhost/... is not a local path and is refused."""
    with pytest.raises(InputRefused, match="local path"):
        policy(files=tmp_path).file_path("file://fileserver/share/x.json")


def test_allow_list_international_names() -> None:
    """Unicode allow-list entries match the host in Unicode or IDNA (punycode) spelling."""
    table = {"xn--bcher-kva.example": [PUBLIC_V4]}
    p = policy(["Bücher.example"], table=table)
    check(p, "http://bücher.example/")
    check(p, "http://xn--bcher-kva.example/")
    refused(p, "http://buecher.example/")


@pytest.mark.parametrize(
    "host",
    ["a..b.example", ".x.example", "a" * 64 + ".example", "a b.example", "x" * 254],
)
def test_malformed_host_names_refused_before_resolving(host: str) -> None:
    """A host name DNS cannot hold is refused by the static check; the resolver is not asked."""
    asked: list[str] = []
    policy = UrlPolicy(resolver=lambda h, p: asked.append(h) or ["93.184.216.34"])
    with pytest.raises(InputRefused, match="not a valid host name"):
        policy.check_target(f"http://{host}/", scheme="http", host=host, port=None)
    assert asked == []


@pytest.mark.parametrize("host", ["a" * 63 + ".example", "my_host.example", "x.example."])
def test_long_but_valid_host_names_pass(host: str) -> None:
    """Labels of 63 characters, underscores and a trailing dot are valid host names."""
    UrlPolicy().check_target(f"http://{host}/", scheme="http", host=host, port=None)
