"""Benchmark of the ETF codec: beamlink vs erlang-py (pure Python) vs erlpack (compiled).

Not a test. Every library decodes the same bytes (beamlink's encoding, which equals Erlang's
``term_to_binary``) and encodes its own decoding of them, so each works on its native types.
"beamlink" is the public API (the compiled accelerator when built), "beamlink-pure" the pure-Python
codec. Prints ops/s per payload and the ratios of both to the others.
Run: ``python3 bench/bench_codec.py``
(``pip install erlang-py erlpack`` for the comparisons; a missing library is reported and skipped).
"""

from __future__ import annotations

import argparse
import importlib
import random
import timeit
from collections.abc import Callable
from typing import Any

from beamlink.etf import ACCELERATED, Atom, decode, decoder, encode, encoder

Codec = tuple[Callable[[bytes], Any], Callable[[Any], bytes]]


def payloads() -> dict[str, Any]:
    rng = random.Random(1)
    return {
        "a {hello,<<\"world\">>,42}": (Atom("hello"), b"world", 42),
        "b 100 ints 0..99 (STRING_EXT)": list(range(100)),
        "b' 100 ints 0..99999 (LIST_EXT)": [rng.randrange(100000) for _ in range(100)],
        "c map 10 atom keys -> binaries": {Atom(f"key{i}"): b"value-%d" % i for i in range(10)},
        "d 1 MB binary": rng.randbytes(1 << 20),
        "e 100 maps, mixed values": [
            {
                Atom("id"): i,
                Atom("name"): b"user-%d" % i,
                Atom("score"): rng.random() * 100,
                Atom("active"): i % 2 == 0,
                Atom("tags"): [Atom("a"), Atom("b")],
                Atom("pos"): (rng.randrange(1000), rng.randrange(-1000, 0)),
                Atom("big"): 2**64 + i,
            }
            for i in range(100)
        ],
    }


def codecs() -> dict[str, Codec | str]:
    found: dict[str, Codec | str] = {
        "beamlink": (decode, encode) if ACCELERATED else "C accelerator not built",
        "beamlink-pure": (decoder.decode, encoder.encode),
    }
    for name, module, dec, enc in (
        ("erlang-py", "erlang", "binary_to_term", "term_to_binary"),
        ("erlpack", "erlpack", "unpack", "pack"),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            found[name] = f"not installed ({exc})"
            continue
        found[name] = (getattr(mod, dec), getattr(mod, enc))
    return found


def best_rates(runs: dict[str, Callable[[], Any]], rounds: int, min_time: float) -> dict[str, float]:
    """Best ops/s of each callable over ``rounds`` interleaved measurements (robust to noise from
    other processes: every library sees the same machine state in each round)."""
    timers = {name: timeit.Timer(run) for name, run in runs.items()}
    numbers = {name: max(1, int(t.autorange()[0] * min_time / 0.2)) for name, t in timers.items()}
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for name, timer in timers.items():
            best[name] = max(best[name], numbers[name] / timer.timeit(numbers[name]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per payload")
    args = parser.parse_args()
    libs = codecs()
    for name, codec in libs.items():
        if isinstance(codec, str):
            print(f"{name}: {codec}")
    usable = {n: c for n, c in libs.items() if not isinstance(c, str)}
    ratios = [
        (ours, theirs)
        for ours in usable
        if ours.startswith("beamlink")
        for theirs in usable
        if not theirs.startswith("beamlink")
    ]
    header = f"{'payload':34} {'op':6}" + "".join(f"{n:>14}" for n in usable)
    header += "".join(f"{ours.replace('beamlink', 'bl') + '/' + theirs:>20}" for ours, theirs in ratios)
    print(header)
    for label, term in payloads().items():
        data = encode(term)
        for op in ("decode", "encode"):
            runs = {}
            for name, (dec, enc) in usable.items():
                try:
                    native = dec(data)
                    enc(native)
                except Exception as exc:  # a library that cannot handle a payload is reported
                    print(f"  {name} {op} {label}: {type(exc).__name__}: {exc}")
                    continue
                runs[name] = (
                    (lambda d=dec, b=data: d(b)) if op == "decode" else (lambda e=enc, t=native: e(t))
                )
            rates = best_rates(runs, args.rounds, args.min_time)
            line = f"{label:34} {op:6}" + "".join(
                f"{rates[n]:>14,.0f}" if n in rates else f"{'-':>14}" for n in usable
            )
            line += "".join(
                f"{rates[ours] / rates[theirs]:>19.2f}x"
                if ours in rates and theirs in rates
                else f"{'-':>20}"
                for ours, theirs in ratios
            )
            print(line)


if __name__ == "__main__":
    main()
