"""Type stub of the optional C extension ``_speedups.c`` (the ETF decoder's hot path)."""

from collections.abc import Callable
from typing import Any

API_VERSION: int

class Fallback(Exception): ...

def decode_body(data: bytes, offset: int, max_depth: int, /) -> tuple[Any, int]: ...
def decode(data: bytes, max_depth: int, max_size: int, /) -> Any: ...
def setup(
    dispatch: list[Callable[[bytes, int, int], tuple[Any, int]]],
    atom: Callable[[bytes, int, int], tuple[Any, int]],
    with_tail: Callable[[list[Any], bytes, int, int, int], tuple[Any, int]],
    to_map: Callable[[list[Any], int], Any],
    charlist_type: type,
    budget: Any,
    over_budget: Callable[[], Exception],
    budget_error: type[Exception],
    /,
) -> None: ...
def set_budgeted(count: int, /) -> None: ...
def read_frames(
    data: bytes,
    pos: int,
    max_frame: int,
    max_body: int,
    max_depth: int,
    no_message: Any,
    out: list[tuple[tuple[Any, ...], Any]],
    /,
) -> int: ...
def encode(term: Any, /) -> bytes: ...
def setup_encoder(
    any: Callable[[Any, list[Any]], None],
    check_distinct_keys: Callable[[list[Any]], None],
    atom_type: type,
    pid_type: type,
    reference_type: type,
    port_type: type,
    improper_list_type: type,
    /,
) -> None: ...
