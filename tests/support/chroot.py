"""Debian chroots the tests run newer Erlang/Elixir/Python from: trixie (OTP 27, Elixir 1.18) and
sid (OTP 29, Elixir 1.20, Python 3.14 and 3.15), built once with debootstrap and cached.

A chroot shares the host's network, so a peer in it talks to the host over 127.0.0.1. Building
needs root and debootstrap; a cached chroot that lacks a package of its spec gets it installed
with apt inside the chroot. ``python3 -m tests.support.chroot NAME`` builds one and prints its path
(scripts/test-python-matrix uses it).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.require import missing, require_tool

CACHE_DIR = Path(os.environ.get("BEAMLINK_TEST_CACHE", "/var/cache/beamlink-test"))
MARKER = ".beamlink-packages"
# Debian's sid and experimental Release files carry a short validity; a mirror snapshot outlives it.
APT_OPTS = ("-o", "Acquire::Check-Valid-Until=false", "-q")


@dataclass(frozen=True)
class ChrootSpec:
    """A cached chroot: its folder under the cache, the Debian suite and the packages it holds."""

    name: str
    suite: str
    packages: tuple[str, ...]

    @property
    def root(self) -> Path:
        return CACHE_DIR / self.name


TRIXIE = ChrootSpec("otp27", "trixie", ("erlang-base", "elixir"))
SID = ChrootSpec(
    "sid",
    "sid",
    (
        "erlang-base", "erlang-crypto", "erlang-ssl", "erlang-public-key", "elixir",
        "python3", "python3-venv", "python3-dev", "gcc",
        "python3.15", "python3.15-venv", "python3.15-dev",
    ),
)
CHROOTS = {spec.name: spec for spec in (TRIXIE, SID)}


def debian_mirror() -> str:
    """The Debian mirror the host's apt uses (the one reachable from here)."""
    for path in Path("/etc/apt/sources.list.d").glob("*.sources"):
        m = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.M)
        if m:
            return m.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", sources.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def _marker_text(spec: ChrootSpec) -> str:
    return "\n".join(sorted(spec.packages)) + "\n"


def _is_ready(spec: ChrootSpec) -> bool:
    marker = spec.root / MARKER
    return marker.exists() and marker.read_text() == _marker_text(spec)


def _not_installed(spec: ChrootSpec) -> list[str]:
    proc = subprocess.run(
        ["chroot", str(spec.root), "dpkg-query", "-W", "-f", "${Package} ${Status}\n",
         *spec.packages],
        capture_output=True, text=True, timeout=60, check=False,
    )
    installed = {
        line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")
    }
    return [p for p in spec.packages if p not in installed]


def _run(argv: list[str], what: str, timeout: float) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if proc.returncode != 0:
        missing(f"{what} failed ({' '.join(argv[:4])} ...): {proc.stderr[-2000:]}")


def ensure_root(spec: ChrootSpec) -> Path:
    """The chroot of ``spec``, built (once, cached, under a file lock) or completed if needed."""
    if _is_ready(spec):
        return spec.root
    if os.geteuid() != 0:
        missing(f"building the {spec.suite} chroot needs root")
    require_tool("chroot")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f"{spec.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_ready(spec):
            return spec.root
        if not (spec.root / "usr/bin/dpkg").exists():
            require_tool("debootstrap")
            tmp = CACHE_DIR / f"{spec.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            _run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(spec.packages)}",
                 spec.suite, str(tmp), debian_mirror()],
                f"debootstrap of the {spec.suite} chroot", 1200,
            )
            tmp.rename(spec.root)
        absent = _not_installed(spec)
        if absent:
            root = str(spec.root)
            _run(["chroot", root, "apt-get", *APT_OPTS, "update"],
                 f"apt-get update in the {spec.suite} chroot", 600)
            _run(["chroot", root, "apt-get", *APT_OPTS, "install", "-y",
                  "--no-install-recommends", *absent],
                 f"installing {' '.join(absent)} in the {spec.suite} chroot", 1200)
        (spec.root / MARKER).write_text(_marker_text(spec))
    return spec.root


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHROOTS:
        print(f"usage: python3 -m tests.support.chroot {{{','.join(CHROOTS)}}}", file=sys.stderr)
        return 2
    try:
        print(ensure_root(CHROOTS[argv[0]]))
    except (pytest.skip.Exception, pytest.fail.Exception) as e:
        print(e.msg, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
