"""OTP's ``ssl_dist_optfile`` read into a `TlsConfig`, so one file configures every node of a mixed
Erlang, Elixir and Python cluster.

The file is one Erlang term, ``[{server, [Opt, ...]}, {client, [Opt, ...]}].``, read with
`beamlink.etf.text.parse_term` (never evaluated). Options, as in ``ssl``:

- ``certfile``, ``keyfile`` (default: the certfile), ``password``: our certificate and key;
- ``cacertfile``: the CAs a peer's certificate must chain to;
- ``verify``: ``verify_peer`` or ``verify_none``. Default as in OTP 26+: ``verify_peer`` for the
  client, ``verify_none`` for the server;
- ``fail_if_no_peer_cert`` (server): refuse clients without a certificate;
- ``versions``: ``['tlsv1.3', 'tlsv1.2']`` (the lowest and highest become the allowed range);
- ``ciphers``: OpenSSL or RFC suite names, as a list of strings or one ``"A:B"`` string. Python
  cannot restrict TLS 1.3 suites, so TLS 1.3 names are accepted only when they are among
  OpenSSL's defaults (all of them normally are);
- ``secure_renegotiate``: accepted (beamlink never renegotiates; OpenSSL only allows secure
  renegotiation anyway);
- ``depth``: the most intermediate CAs accepted (enforced on Python 3.13+);
- ``server_name_indication`` (client): ``disable`` (no SNI, no host name check) or a host name
  to check every server against, instead of the host of its node name;
- ``customize_hostname_check`` (client): ``[]``, or ``[{match_fun, fun(_, _) -> true end}]``:
  every name matches, so a peer is authenticated by its CA alone (no host name check), the one
  match function read without running code. It is how an optfile turns the check off for OTP 25
  too, whose ``inet_tls_dist`` puts the node's host before the file's options, so that there
  ``{server_name_indication, disable}`` does not stop the check (OTP 26+ honour it).

Anything else raises `OptfileError` naming the option and the file.
"""

from __future__ import annotations

import logging
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beamlink.connection.tls import TlsConfig
from beamlink.errors import ConfigurationError
from beamlink.etf import Atom, Charlist
from beamlink.etf.text import ConstantFun, TermSyntaxError, parse_term

__all__ = ["OptfileError", "load_optfile", "tls_config"]

log = logging.getLogger(__name__)

DEPTH_ENFORCED = sys.version_info >= (3, 13)
_VERSIONS = {
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
}
_SIDES = ("server", "client")
_SERVER_ONLY = frozenset({"fail_if_no_peer_cert"})
_CLIENT_ONLY = frozenset({"server_name_indication", "customize_hostname_check"})


class OptfileError(ConfigurationError, ValueError):
    """The ssl_dist_optfile cannot be used; the message names the file and the option."""


def load_optfile(path: str | Path) -> TlsConfig:
    """The `TlsConfig` an ``ssl_dist_optfile`` describes (both sides). Raises `OptfileError`."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OptfileError(f"ssl_dist_optfile {file}: cannot read it: {exc}") from None
    try:
        term = parse_term(text)
    except TermSyntaxError as exc:
        raise OptfileError(f"ssl_dist_optfile {file}: not an Erlang term list: {exc}") from None
    return tls_config(term, where=str(file))


def tls_config(term: Any, *, where: str = "ssl_dist_optfile") -> TlsConfig:
    """The `TlsConfig` of an already parsed optfile term. Relative paths are taken from the
    working directory, as OTP does."""
    if not isinstance(term, list):
        raise OptfileError(f"{where}: must be a list [{{server, [...]}}, {{client, [...]}}]")
    sides: dict[str, list[Any]] = {}
    for item in term:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Atom)
                and str(item[0]) in _SIDES and isinstance(item[1], list)):
            raise OptfileError(
                f"{where}: unexpected entry {item!r}; expected {{server, [...]}} or {{client, [...]}}"
            )
        if str(item[0]) in sides:
            raise OptfileError(f"{where}: {{{item[0]}, ...}} given twice")
        sides[str(item[0])] = item[1]
    for side in _SIDES:
        if side not in sides:
            raise OptfileError(
                f"{where}: no {{{side}, [...]}} entry; a node both accepts and dials, so the file "
                "needs both"
            )
    server_options = _options(sides["server"], server_side=True, where=where)
    client_options = _options(sides["client"], server_side=False, where=where)
    server, server_depth, _ = _context(server_options, server_side=True, where=where)
    client, client_depth, server_name = _context(client_options, server_side=False, where=where)
    if (server_depth is not None or client_depth is not None) and not DEPTH_ENFORCED:
        log.warning("%s: depth is only enforced on Python 3.13 and later; this Python accepts "
                    "any chain OpenSSL accepts", where)
    return TlsConfig(server=server, client=client, server_name=server_name,
                     server_depth=server_depth, client_depth=client_depth)


def _text(value: Any) -> str | None:
    if isinstance(value, Charlist | Atom):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list) and all(isinstance(c, int) for c in value):
        return "".join(map(chr, value))  # "" is [] in Erlang
    return None


def _options(options: list[Any], *, server_side: bool, where: str) -> dict[str, Any]:
    """The options of one side, each checked and converted; unknown ones raise."""
    side = "server" if server_side else "client"
    seen: dict[str, Any] = {}
    for option in options:
        if not (isinstance(option, tuple) and len(option) == 2 and isinstance(option[0], Atom)):
            raise OptfileError(f"{where}: {side} option {option!r} is not a {{Name, Value}} pair")
        name, value = str(option[0]), option[1]
        if name not in _OPTIONS or (server_side and name in _CLIENT_ONLY) or (
            not server_side and name in _SERVER_ONLY
        ):
            supported = ", ".join(sorted(
                o for o in _OPTIONS
                if not (server_side and o in _CLIENT_ONLY) and (server_side or o not in _SERVER_ONLY)
            ))
            raise OptfileError(
                f"{where}: {side} option {name!r} is not supported by beamlink (supported: "
                f"{supported})"
            )
        if name in seen:
            raise OptfileError(f"{where}: {side} option {name!r} given twice")
        try:
            seen[name] = _OPTIONS[name](value)
        except (TypeError, ValueError) as exc:
            raise OptfileError(f"{where}: {side} option {name!r}: {exc}") from None
    return seen


def _context(
    seen: dict[str, Any], *, server_side: bool, where: str
) -> tuple[ssl.SSLContext, int | None, bool | str]:
    side = "server" if server_side else "client"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    versions = seen.get("versions")
    if versions:
        ctx.minimum_version = min(versions)
        ctx.maximum_version = max(versions)
    ciphers = seen.get("ciphers")
    if ciphers:
        _set_ciphers(ctx, ciphers, f"{where}: {side} option 'ciphers'")

    verify = seen.get("verify", "verify_none" if server_side else "verify_peer")
    if verify == "verify_peer":
        if server_side:
            ctx.verify_mode = (
                ssl.CERT_REQUIRED if seen.get("fail_if_no_peer_cert") else ssl.CERT_OPTIONAL
            )
        else:
            ctx.check_hostname = (seen.get("server_name_indication") is not False
                                  and not seen.get("customize_hostname_check", False))
            ctx.verify_mode = ssl.CERT_REQUIRED
        if "cacertfile" not in seen:
            raise OptfileError(
                f"{where}: {side} has verify_peer but no cacertfile: name the CA file peers' "
                "certificates must chain to"
            )
    else:
        if not server_side:
            ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if seen.get("fail_if_no_peer_cert"):
            raise OptfileError(
                f"{where}: server option 'fail_if_no_peer_cert' needs {{verify, verify_peer}}"
            )
    if "cacertfile" in seen:
        try:
            ctx.load_verify_locations(cafile=seen["cacertfile"])
        except (OSError, ssl.SSLError) as exc:
            raise OptfileError(
                f"{where}: {side} option 'cacertfile' ({seen['cacertfile']}): {exc}"
            ) from None
    certfile = seen.get("certfile")
    if certfile is not None:
        keyfile = seen.get("keyfile", certfile)
        try:
            ctx.load_cert_chain(certfile, keyfile, password=seen.get("password"))
        except (OSError, ssl.SSLError) as exc:
            raise OptfileError(
                f"{where}: {side} options 'certfile' ({certfile}) / 'keyfile' ({keyfile}): "
                f"cannot load them: {exc} (a wrong password, or a key that does not match?)"
            ) from None
    elif server_side:
        raise OptfileError(f"{where}: server has no certfile: a TLS node needs a certificate")
    elif "keyfile" in seen:
        raise OptfileError(f"{where}: client option 'keyfile' without 'certfile'")

    sni = seen.get("server_name_indication", True)
    return ctx, seen.get("depth"), sni


def _set_ciphers(ctx: ssl.SSLContext, names: list[str], what: str) -> None:
    tls13 = [n for n in names if n.startswith("TLS_")]
    tls12 = [n for n in names if not n.startswith("TLS_")]
    default13 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"}
    unknown13 = [n for n in tls13 if n not in default13]
    if unknown13:
        raise OptfileError(f"{what}: TLS 1.3 suites {unknown13} are not available here "
                           f"(available: {sorted(default13)})")
    if tls13 and set(tls13) != default13:
        raise OptfileError(
            f"{what}: Python cannot restrict TLS 1.3 suites; list all of {sorted(default13)} or "
            "none (or leave TLS 1.3 out of versions)"
        )
    if tls12:
        try:
            ctx.set_ciphers(":".join(tls12))
        except ssl.SSLError:
            raise OptfileError(f"{what}: no usable cipher among {tls12}") from None


def _path(value: Any) -> str:
    text = _text(value)
    if not text:
        raise ValueError(f"expected a file name string, got {value!r}")
    return text


def _password(value: Any) -> str:
    text = _text(value)
    if text is None:
        raise ValueError(f"expected a string, got {value!r}")
    return text


def _verify(value: Any) -> str:
    if value not in (Atom("verify_peer"), Atom("verify_none")):
        raise ValueError(f"expected verify_peer or verify_none, got {value!r}")
    return str(value)


def _boolean(value: Any) -> bool:
    if value not in (Atom("true"), Atom("false")):
        raise ValueError(f"expected true or false, got {value!r}")
    return bool(value == Atom("true"))


def _versions(value: Any) -> list[ssl.TLSVersion]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a list such as ['tlsv1.3', 'tlsv1.2'], got {value!r}")
    out = []
    for item in value:
        if not isinstance(item, Atom) or str(item) not in _VERSIONS:
            raise ValueError(f"'{item}' is not supported (use 'tlsv1.3' and/or 'tlsv1.2')")
        out.append(_VERSIONS[str(item)])
    return out


def _ciphers(value: Any) -> list[str]:
    if isinstance(value, Charlist | bytes):
        names = [n for n in str(_text(value)).split(":") if n]
        if names:
            return names
    elif isinstance(value, list) and value:
        names = []
        for item in value:
            if not isinstance(item, Charlist | bytes):
                raise ValueError(
                    f"{item!r}: give suites as strings (\"TLS_AES_128_GCM_SHA256\"); maps are not read"
                )
            names.append(str(_text(item)))
        return names
    raise ValueError(f"expected a list of suite name strings, got {value!r}")


def _depth(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise ValueError(f"expected an integer 0..100, got {value!r}")
    return value


def _sni(value: Any) -> bool | str:
    if value == Atom("disable"):
        return False
    text = _text(value)
    if not text or isinstance(value, Atom):
        raise ValueError(f"expected disable or a host name string, got {value!r}")
    return text


_MATCH_ANY = [(Atom("match_fun"), ConstantFun(2, Atom("true")))]


def _hostname_check(value: Any) -> bool:
    """True when every name matches (no host name check), False for ``[]``."""
    if value == []:
        return False
    if value == _MATCH_ANY:
        return True
    raise ValueError(
        "only [] or [{match_fun, fun(_, _) -> true end}] (every name matches: no host name "
        "check) can be read from a file, since beamlink runs no Erlang code; to check a fixed "
        "name, use server_name_indication"
    )


_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "certfile": _path,
    "keyfile": _path,
    "password": _password,
    "cacertfile": _path,
    "verify": _verify,
    "fail_if_no_peer_cert": _boolean,
    "versions": _versions,
    "ciphers": _ciphers,
    "secure_renegotiate": _boolean,
    "depth": _depth,
    "server_name_indication": _sni,
    "customize_hostname_check": _hostname_check,
}
