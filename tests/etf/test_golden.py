"""Golden tests against real Erlang (OTP 25 on the host, OTP 27 and 29 in the trixie and sid chroots).

Direction 1: ``etf_golden:generate/1`` writes ``term_to_binary`` of a few thousand terms; beamlink
decodes and re-encodes each (identical bytes for canonical encodings) and ``erl`` checks with
``binary_to_term`` that every re-encoding is ``=:=`` the original.
Direction 2: beamlink encodes random Python terms; ``erl`` builds the same values from Erlang
source text and checks ``binary_to_term`` of beamlink's bytes is ``=:=`` (and, where Erlang's
map-key order cannot differ, that the bytes equal ``term_to_binary``).
One ``erl`` process per step, data exchanged through files.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from beamlink.etf import decode, encode
from tests.etf.erlang_text import exact, random_term, to_erlang
from tests.support.erlang import RUNTIME_LABELS, ErlRuntime, runtime

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
CANONICAL, OLD_ENCODING, COMPRESSED = 0, 1, 2


@dataclass
class Golden:
    """A compiled ``etf_golden`` module in a directory the runtime can see."""

    rt: ErlRuntime
    host_dir: Path
    rt_dir: str

    def run(self, call: str) -> None:
        """Evaluate ``etf_golden:<call>`` in a fresh ``erl`` and wait for it."""
        argv = self.rt.argv(
            "erl", "-noshell", "-pa", self.rt_dir, "-eval", f"etf_golden:{call}, halt()."
        )
        env = dict(os.environ, ERL_CRASH_DUMP=f"{self.rt_dir}/erl_crash.dump")
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=300, check=False, env=env,
            cwd=self.host_dir,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def path(self, name: str) -> tuple[Path, str]:
        return self.host_dir / name, f"{self.rt_dir}/{name}"


@pytest.fixture(scope="module", params=RUNTIME_LABELS)
def golden(request: pytest.FixtureRequest) -> Iterator[Golden]:
    rt = runtime(request.param)
    with rt.tempdir() as (host_dir, rt_dir):
        rt.compile(HERE / "etf_golden.erl", (host_dir, rt_dir))
        yield Golden(rt, host_dir, rt_dir)


def read_records(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        kind, size = struct.unpack_from(">BI", data, pos)
        out.append((kind, data[pos + 5 : pos + 5 + size]))
        pos += 5 + size
    return out


def check_report(path: Path, count: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"checked {count}"
    assert lines[1:] == []


def test_erlang_encodings_decode_and_reencode(golden: Golden) -> None:
    orig_host, orig_rt = golden.path("orig.bin")
    golden.run(f'generate("{orig_rt}")')
    records = read_records(orig_host.read_bytes())
    assert len(records) > 2500
    kinds = {kind for kind, _ in records}
    assert kinds == {CANONICAL, OLD_ENCODING, COMPRESSED}
    differing = []
    responses = []
    for index, (kind, data) in enumerate(records):
        term = decode(data)
        again = encode(term)
        if kind == CANONICAL and again != data:
            differing.append((index, data[:60], again[:60]))
        if kind == COMPRESSED:
            assert data[1] == 80
            assert encode(term, compressed=6) == data, index
        responses.append(struct.pack(">I", len(again)) + again)
    assert differing == []
    resp_host, resp_rt = golden.path("resp.bin")
    resp_host.write_bytes(b"".join(responses))
    report_host, report_rt = golden.path("report.txt")
    golden.run(f'check_roundtrip("{orig_rt}", "{resp_rt}", "{report_rt}")')
    check_report(report_host, len(records))


def test_beamlink_encodings_accepted_by_erlang(golden: Golden) -> None:
    rng = random.Random(20240601)
    terms = [random_term(rng) for _ in range(3000)]
    records = []
    for term in terms:
        text = to_erlang(term).encode("utf-8")
        data = encode(term)
        records.append(
            struct.pack(">I", len(text)) + text + struct.pack(">I", len(data)) + data
            + bytes((exact(term),))
        )
    in_host, in_rt = golden.path("encoded.bin")
    in_host.write_bytes(b"".join(records))
    report_host, report_rt = golden.path("report2.txt")
    golden.run(f'check_encoded("{in_rt}", "{report_rt}")')
    check_report(report_host, len(terms))
