"""URL parsing and redirect joining of the input HTTP client (jobrunner._http1), no network."""

from __future__ import annotations

import pytest

from jobrunner._http1 import BadHost, join_url, parse_url


def test_parse_url_parts() -> None:
    """Scheme and host are lower-cased, the port kept, the fragment dropped."""
    url = parse_url("HTTPS://Data.Example:8443/a/b.json?x=1#top")
    assert (url.scheme, url.host, url.port, url.target) == (
        "https",
        "data.example",
        8443,
        "/a/b.json?x=1",
    )
    assert url.authority == "data.example:8443"
    assert url.origin == ("https", "data.example", 8443)
    assert not url.credentials


def test_default_port_is_left_out_of_host_header() -> None:
    """An explicit default port does not appear in the Host header; the origin has it."""
    url = parse_url("http://example.org:80")
    assert url.authority == "example.org"
    assert url.target == "/"
    assert url.origin == ("http", "example.org", 80)


def test_ipv6_host() -> None:
    """An IPv6 host loses its brackets, and the Host header puts them back."""
    url = parse_url("http://[2001:DB8::1]:8080/x")
    assert url.host == "2001:db8::1"
    assert url.authority == "[2001:db8::1]:8080"


def test_credentials_detected() -> None:
    """user:password@ is reported (the policy refuses it) and is not part of the host."""
    url = parse_url("http://user:secret@example.org/")
    assert url.credentials
    assert url.host == "example.org"


def test_international_name_spelled_in_ascii() -> None:
    """A non-ASCII host name is connected to by its IDNA (xn--) spelling."""
    assert parse_url("http://bücher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize("host", ["xn--", "xn--ls8h.example", "xn--a.example"])
def test_malformed_punycode_is_a_bad_host(host: str) -> None:
    """An xn-- label that is not valid IDNA is refused as a host."""
    with pytest.raises(BadHost, match="not a valid host name"):
        parse_url(f"http://{host}/")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://example.org:65536/", "not 1-65535"),
        ("http://example.org:0/", "not 1-65535"),
        ("http://example.org:8o/", "not a number"),
        ("http://[::1/", "IPv6"),
        ("http://[not-ip]/", "IPv6|not-ip"),
        # urllib.parse itself refuses it on some patched Pythons (Debian 12's 3.11.2).
        ("http://[::1]x/", "after the IPv6 address|Invalid IPv6 URL"),
        ("http://[fe80::1%25eth0]/", "zone identifiers"),
        ("http://[fe80::1%\u00e4]/", "zone identifiers"),
        ("http://a]b/", r"IPv6|'\[' or '\]'"),
        ("http:example.org/x", "no '//'"),
        ("http://example.org/\r\nX: 1", "control characters"),
        ("http://example.org/\x00", "control characters"),
    ],
)
def test_invalid_urls(url: str, says: str) -> None:
    """Malformed ports, IPv6 literals, missing // and control characters raise ValueError
    (some worded by urllib.parse, whose wording varies across Python versions)."""
    with pytest.raises(ValueError, match=says):
        parse_url(url)


def test_target_percent_encoding() -> None:
    """Characters a request line may not carry are percent-encoded as UTF-8; escapes stay."""
    url = parse_url('http://h.example/ä b/%7e?q="1"&r=%g|')
    assert url.target == "/%C3%A4%20b/%7e?q=%221%22&r=%25g%7C"


@pytest.mark.parametrize(
    ("location", "joined"),
    [
        ("/b", "http://h.example/b"),
        ("c?x=1", "http://h.example/a/c?x=1"),
        ("//other.example/d", "http://other.example/d"),
        ("https://other.example/e", "https://other.example/e"),
        ("http:relative-looking", "http:relative-looking"),  # absolute (RFC 3986, strict)
    ],
)
def test_join_url(location: str, joined: str) -> None:
    """Relative Locations resolve against the answering URL; one with a scheme is absolute."""
    assert join_url("http://h.example/a/b", location) == joined


def test_join_url_refuses_control_characters() -> None:
    """A Location with control characters is not a URL."""
    with pytest.raises(ValueError, match="control characters"):
        join_url("http://h.example/", "/x\r\nSet-Cookie: a=b")
