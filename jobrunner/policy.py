"""The input URL policy: which URLs a worker may fetch, and which addresses it may reach.

Threat model: job documents come from a queue and are untrusted. An input
URL (or a redirect from an input server) could point the worker at
something only the worker can reach — its own loopback services, the
private network, a cloud metadata endpoint (``169.254.169.254``) — and the
job's result document would then publish what came back (server-side
request forgery). The policy therefore:

* allows the ``http`` and ``https`` schemes only; ``file:`` URLs only when
  ``allow_file_inputs`` names a directory and the real path (symlinks
  resolved) lies below it, and never as a redirect target;
* with an allow-list (``--allow-host``: exact host, ``*.suffix`` or an IP
  address / CIDR network) allows only matching hosts; without one, any host
  whose addresses are all public;
* refuses loopback, private, link-local (metadata), multicast, reserved,
  unspecified and carrier-grade NAT addresses unless the allow-list names
  the host exactly or lists the address's network. IPv6 wrappers of IPv4
  (IPv4-mapped, NAT64, 6to4, Teredo) are unwrapped and the embedded IPv4
  address is checked too; numeric IPv4 spellings (``2130706433``,
  ``0x7f.1``, ``127.1``, ``0177.0.0.1``) are normalised as ``inet_aton``
  does, so they are recognised as the addresses they are;
* checks every address a host name resolves to. :mod:`jobrunner.fetch`
  connects only to an address that passed the check (no DNS-rebinding
  window) and applies the policy to every redirect hop.

A ``*.suffix`` entry admits the names below the suffix but only at public
addresses: wildcard zones often hold names that others control, and
pointing one at ``127.0.0.1`` takes a single DNS record. List the network
as well (``--allow-host 10.0.0.0/8``) to reach private hosts by wildcard.

Every refusal is an :class:`~jobrunner.errors.InputRefused` whose message
names the URL, the host or address, the rule, and what to do.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs

from jobrunner.errors import InputRefused
from jobrunner.resultsdir import is_inside

__all__ = [
    "IPAddress",
    "Resolver",
    "Target",
    "UrlPolicy",
    "address_problem",
    "host_name_problem",
    "parse_ip",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Resolves ``(host, port)`` to the IP addresses (as strings) a connection may use.
Resolver = Callable[[str, int], list[str]]

_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_PASSED = 1024  # host names remembered as having passed the static checks
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in rows)


# Our own tables of the address blocks that are not publicly reachable, after
# IANA's IPv4 and IPv6 special-purpose address registries. They are written
# here rather than taken from ``ipaddress``'s ``is_private``/``is_global``
# because those changed between Python releases (and between distributions'
# patched builds of one release: Debian's 3.11.2 and Python 3.13 count 6to4's
# 2002::/16 as private), and the policy must give the same verdict on every
# Python. The first matching row names the reason; order matters only where
# blocks nest (metadata inside link-local).
_NON_PUBLIC_V4 = _table(
    ("0.0.0.0/32", "an unspecified address"),
    ("0.0.0.0/8", "a reserved address ('this network', 0.0.0.0/8)"),
    ("10.0.0.0/8", "a private address (10.0.0.0/8)"),
    ("100.64.0.0/10", "a carrier-grade NAT address (100.64.0.0/10)"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.169.254/32", "the cloud metadata address (link-local)"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address (172.16.0.0/12)"),
    ("192.0.0.0/24", "a reserved address (IETF protocol assignments, 192.0.0.0/24)"),
    ("192.0.2.0/24", "a private address (documentation, TEST-NET-1)"),
    ("192.88.99.0/24", "a reserved address (6to4 relay anycast, 192.88.99.0/24)"),
    ("192.168.0.0/16", "a private address (192.168.0.0/16)"),
    ("198.18.0.0/15", "a private address (benchmarking, 198.18.0.0/15)"),
    ("198.51.100.0/24", "a private address (documentation, TEST-NET-2)"),
    ("203.0.113.0/24", "a private address (documentation, TEST-NET-3)"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "a reserved address (limited broadcast)"),
    ("240.0.0.0/4", "a reserved address (240.0.0.0/4)"),
)
_NON_PUBLIC_V6 = _table(
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a private address (local-use NAT64, 64:ff9b:1::/48)"),
    ("100::/64", "a reserved address (discard-only, 100::/64)"),
    ("2001:db8::/32", "a private address (documentation, 2001:db8::/32)"),
    ("2001::/23", "a reserved address (IETF protocol assignments, 2001::/23)"),
    ("3fff::/20", "a private address (documentation, 3fff::/20)"),
    ("5f00::/16", "a reserved address (segment routing, 5f00::/16)"),
    ("fd00:ec2::254/128", "the cloud metadata address (unique local)"),
    ("fc00::/7", "a private address (unique local, fc00::/7)"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a reserved address (site-local, fec0::/10)"),
    ("ff00::/8", "a multicast address"),
)
# Global unicast IPv6 is 2000::/3; everything outside it is unassigned or special.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_HINT = "add --allow-host {what} to the worker's settings if this input is trusted"


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with ``getaddrinfo``, returning distinct addresses in order.

    Raises:
        OSError: (``socket.gaierror``) when the name does not resolve.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        # The idna codec refuses empty or over-long labels with UnicodeError, not
        # gaierror; callers expect an OSError for a name that cannot be resolved.
        raise OSError(f"{host!r} is not a valid host name ({exc})") from None
    out: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in out:
            out.append(address)
    return out


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """Parse the legacy numeric IPv4 forms ``inet_aton`` accepts, or return None.

    One to four parts separated by dots, each decimal, octal (leading ``0``)
    or hexadecimal (``0x``); the last part fills the remaining bytes.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                number = int(part[2:], 16) if part[2:] else 0
            elif len(part) > 1 and part.startswith("0"):
                number = int(part[1:], 8)
            else:
                number = int(part, 10)
        except ValueError:
            return None
        if not part or number < 0 or not part.replace("x", "").replace("X", "").isalnum():
            return None
        numbers.append(number)
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value * 256 + n
    value = value * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(value)


def parse_ip(host: str) -> IPAddress | None:
    """Return the IP address a URL host spells, or None for a host name.

    Accepts IPv6 with or without brackets (a zone id is dropped) and every
    numeric IPv4 form ``inet_aton`` accepts (``127.1``, ``0x7f.1``,
    ``2130706433``, ``0177.0.0.1``).
    """
    text = host.strip("[]").split("%", 1)[0]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    if not text or not text.isascii() or not text[0].isdigit():
        return None
    return _inet_aton(text)


def _embedded_ipv4(address: IPAddress) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    out: list[tuple[str, ipaddress.IPv4Address]] = []
    if address.ipv4_mapped is not None:
        out.append(("IPv4-mapped", address.ipv4_mapped))
    if address in _NAT64:
        out.append(("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)))
    if address.sixtofour is not None:
        out.append(("6to4", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        out += [("Teredo server", server), ("Teredo client", client)]
    return out


def _plain_problem(address: IPAddress) -> str | None:
    """Why one (unwrapped) address is not public, or None when it is."""
    if isinstance(address, ipaddress.IPv4Address):
        for network, why in _NON_PUBLIC_V4:
            if address in network:
                return why
        return None
    for network, why in _NON_PUBLIC_V6:
        if address in network:
            return why
    if address not in _GLOBAL_UNICAST_V6:
        return "a reserved address (outside global unicast 2000::/3)"
    return None


def address_problem(address: IPAddress) -> str | None:
    """Say why ``address`` is not a public address, or return None when it is.

    IPv4-mapped, NAT64, 6to4 and Teredo IPv6 addresses are unwrapped: the
    IPv4 address they carry must be public too.
    """
    for kind, inner in _embedded_ipv4(address):
        problem = _plain_problem(inner)
        if problem is not None:
            return f"{kind} address embedding {inner}, {problem}"
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None or address in _NAT64
    ):
        # The IPv4 address is what is reached (an IPv6-only host's DNS64 maps
        # every IPv4-only server into 64:ff9b::/96), and it is public.
        return None
    return _plain_problem(address)


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def host_name_problem(name: str) -> str | None:
    """Say why a normalised (lower-case, ASCII) host name cannot be looked up, or return None.

    DNS allows labels of 1 to 63 octets and names of at most 253; the
    resolver's IDNA step raises on anything else, so such a name is refused
    here with a message instead. Letters, digits, ``-`` and ``_`` only.
    """
    if not name.isascii():
        return "it is not a valid international (IDNA) name"
    if len(name) > 253:
        return f"it is {len(name)} characters long, more than DNS allows (253)"
    for label in name.split("."):
        if not label:
            return "it has an empty label (two dots in a row, or a leading dot)"
        if len(label) > 63:
            return f"a label is {len(label)} characters long, more than DNS allows (63)"
        if not set(label) <= _LABEL_CHARS:
            return "it holds characters other than letters, digits, '-' and '_'"
    return None


def _normalise_name(host: str) -> str:
    """Lower-case, drop a trailing dot, and spell international names in ASCII (IDNA)."""
    name = host.strip().lower().rstrip(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # matches no ASCII entry, and httpx refuses to connect to it
    return name


@attrs.frozen
class Target:
    """An input URL that passed the static checks (scheme, form, host allow-list).

    ``ip`` is set when the host is an IP address (in any spelling);
    ``named`` says the allow-list names this host exactly, which also admits
    its non-public addresses; ``wildcard`` that a ``*.suffix`` entry admits it.
    """

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None
    named: bool
    wildcard: bool


class UrlPolicy:
    """Decides which input URLs may be fetched and which addresses may be reached.

    Args:
        allow_host: the allow-list: exact host names, ``*.suffix`` patterns,
            IP addresses and CIDR networks. Empty: every public host.
        allow_file_inputs: a directory below which ``file:`` URLs may read,
            or None to refuse ``file:`` URLs.
        resolver: resolves ``(host, port)`` to addresses;
            :func:`system_resolver` when None.

    Raises:
        ValueError: an allow-list entry that is neither a host name, a
            ``*.suffix`` pattern, an address nor a network.
    """

    def __init__(
        self,
        allow_host: Iterable[str] = (),
        *,
        allow_file_inputs: Path | str | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        self._networks: list[IPNetwork] = []
        for raw in allow_host:
            entry = _normalise_name(raw)
            if not entry:
                continue
            if entry.startswith("*."):
                if len(entry) < 3 or "*" in entry[2:]:
                    raise ValueError(f"allow_host: invalid pattern {raw!r}")
                self._suffixes.append(entry[1:])  # ".example.com"
            elif "/" in entry:
                try:
                    self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                except ValueError as exc:
                    raise ValueError(f"allow_host: invalid network {raw!r}: {exc}") from None
            elif (ip := parse_ip(entry)) is not None:
                self._networks.append(ipaddress.ip_network(ip))
            elif "*" in entry or "/" in entry or " " in entry:
                raise ValueError(f"allow_host: invalid host {raw!r}")
            else:
                self._names.add(entry)
        self._file_root = (
            Path(os.path.realpath(allow_file_inputs)) if allow_file_inputs is not None else None
        )
        self._resolver: Resolver = resolver or system_resolver
        # Hosts that passed the static checks (no name resolution involved), by
        # their spelling in the URL: (name, ip, named, wildcard). Refusals are not kept.
        self._passed: dict[str, tuple[str, IPAddress | None, bool, bool]] = {}

    @property
    def has_allow_list(self) -> bool:
        """True when ``--allow-host`` restricts the hosts."""
        return bool(self._names or self._suffixes or self._networks)

    # -- static checks (no name resolution) --------------------------------

    def check_url(self, url: str, *, redirect: bool = False) -> Target:
        """Check a URL's form, scheme and host without resolving names.

        The URL is parsed with :func:`urllib.parse.urlsplit`; the fetcher
        parses with httpx and calls :meth:`check_target` with httpx's view of
        the URL, so that the host checked is the host connected to.

        Args:
            url: the URL to check.
            redirect: True for a redirect target (``file:`` is never allowed).

        Returns:
            The parsed :class:`Target`.

        Raises:
            InputRefused: naming the URL, the rule and what to do.
        """
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InputRefused(f"input URL {url!r} refused: not a valid URL ({exc})") from None
        return self.check_target(
            url,
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=port,
            credentials=parts.username is not None or parts.password is not None,
            redirect=redirect,
        )

    def check_target(
        self,
        url: str,
        *,
        scheme: str,
        host: str,
        port: int | None,
        credentials: bool = False,
        redirect: bool = False,
    ) -> Target:
        """Check an already parsed URL: scheme, credentials, host allow-list, IP hosts.

        A host that passed is remembered, so the next URL naming it skips these
        static checks; nothing about name resolution is remembered (the
        addresses a name resolves to are checked each time it is resolved).

        Args:
            url: the URL, for messages.
            scheme, host, port: as the HTTP client parsed them (port None: default).
            credentials: the URL carries ``user:password@``.
            redirect: True for a redirect target (``file:`` is never allowed).

        Returns:
            The :class:`Target`; its host names still need :meth:`resolve`.

        Raises:
            InputRefused: naming the URL, the rule and what to do.
        """
        scheme = scheme.lower()
        if scheme == "file" and not redirect:
            raise InputRefused(
                f"input URL {url} refused: file: URLs are read from disk, not over HTTP; "
                "they are allowed below --allow-file-inputs DIR only"
            )
        if scheme not in _SCHEMES:
            where = "a redirect to " if redirect else ""
            raise InputRefused(
                f"input URL {where}{url} refused: scheme {scheme or '(none)'!r} is not allowed; "
                "input URLs must use http or https"
            )
        if credentials:
            raise InputRefused(
                "input URL refused: it carries credentials (user:password@host); "
                "job documents are not a place for secrets: use a URL without credentials"
            )
        known = self._passed.get(host)
        if known is not None:
            name, ip, named, wildcard = known
            return Target(
                url,
                scheme,
                name,
                _DEFAULT_PORTS[scheme] if port is None else port,
                ip,
                named,
                wildcard,
            )
        name = _normalise_name(host)
        if not name:
            raise InputRefused(f"input URL {url} refused: it names no host")
        ip = parse_ip(name)
        if ip is None and (problem := host_name_problem(name)) is not None:
            raise InputRefused(
                f"input URL {url!r} refused: host {name!r} is not a valid host name: {problem}"
            )
        named = ip is None and name in self._names
        wildcard = ip is None and any(name.endswith(s) for s in self._suffixes)
        target = Target(
            url, scheme, name, _DEFAULT_PORTS[scheme] if port is None else port, ip, named, wildcard
        )
        if ip is not None:
            self.check_address(target, ip)
        elif self.has_allow_list and not (named or wildcard or self._networks):
            raise InputRefused(
                f"input URL {url} refused: host {name!r} is not on the allow-list "
                f"({self._describe_list()}); " + _HINT.format(what=name)
            )
        if len(self._passed) >= _MAX_PASSED:
            self._passed.clear()
        self._passed[host] = (name, ip, named, wildcard)
        return target

    # -- address checks ------------------------------------------------------

    def _listed(self, address: IPAddress) -> bool:
        candidates = [address] + [inner for _kind, inner in _embedded_ipv4(address)]
        return any(
            c in net for c in candidates for net in self._networks if c.version == net.version
        )

    def check_address(self, target: Target, address: IPAddress) -> None:
        """Check one address ``target.host`` resolved to (or spells).

        Raises:
            InputRefused: naming the URL, host, address and rule.
        """
        if self._listed(address) or target.named:
            return
        problem = address_problem(address)
        if problem is None and (target.wildcard or not self.has_allow_list):
            return
        if target.ip is None:
            shown = f"{target.host!r} resolves to {address}"
        else:
            shown = target.host if target.host == str(address) else f"{target.host} ({address})"
        if problem is None:
            rule = f"which is not on the allow-list ({self._describe_list()})"
        else:
            rule = f"which is {problem}; only public addresses are fetched unless allowed"
        what = target.host if target.ip is None and not target.wildcard else str(address)
        hint = _HINT.format(what=what)
        if target.ip is None:
            hint += f" (or the address {address}, or its network as CIDR)"
        raise InputRefused(f"input URL {target.url} refused: host {shown}, {rule}; {hint}")

    def resolve(self, target: Target) -> list[IPAddress]:
        """Resolve the target's host and check every address it resolves to.

        Returns:
            The checked addresses, in resolver order (the host's own address
            for an IP host, without consulting the resolver).

        Raises:
            InputRefused: when any address is refused.
            OSError: when the name does not resolve.
        """
        if target.ip is not None:
            return [target.ip]
        addresses = []
        for text in self._resolver(target.host, target.port):
            address = parse_ip(text)
            if address is None:
                raise OSError(f"resolver returned {text!r}, not an IP address")
            self.check_address(target, address)
            addresses.append(address)
        if not addresses:
            raise OSError(f"{target.host} resolves to no address")
        return addresses

    # -- file: URLs -----------------------------------------------------------

    def file_path(self, url: str) -> Path:
        """Map a ``file:`` URL to a real path below ``allow_file_inputs``.

        Returns:
            The resolved path (symlinks followed) — open exactly this path.

        Raises:
            InputRefused: file inputs disabled, a remote host, or a path
                (after resolving symlinks) outside the allowed directory.
        """
        if self._file_root is None:
            raise InputRefused(
                f"input URL {url} refused: file: URLs are disabled; set --allow-file-inputs DIR "
                "to read inputs below DIR, or serve the file over http(s)"
            )
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() != "file":
            raise InputRefused(f"input URL {url} refused: not a file: URL")
        if parts.netloc not in ("", "localhost"):
            raise InputRefused(
                f"input URL {url} refused: file: URLs must name a local path (file:///path)"
            )
        path = urllib.parse.unquote(parts.path)
        try:
            path.encode("utf-8")
        except UnicodeError:
            raise InputRefused(
                f"input URL {url!r} refused: the path is not valid Unicode"
            ) from None
        if "\x00" in path or not path.startswith("/"):
            raise InputRefused(f"input URL {url} refused: not an absolute file path")
        real = Path(os.path.realpath(path))
        root = self._file_root
        if real != root and not is_inside(root, real):
            raise InputRefused(
                f"input URL {url} refused: {real} lies outside the allowed directory {root} "
                "(symlinks are resolved); put the input below that directory or change "
                "--allow-file-inputs"
            )
        return real

    def _describe_list(self) -> str:
        entries: Sequence[str] = [
            *sorted(self._names),
            *("*" + s for s in self._suffixes),
            *(str(n) for n in self._networks),
        ]
        return "--allow-host " + ", ".join(entries)
