"""Every example of README.md, docs/*.md and examples/**/README.md runs and prints what the doc
shows (conventions: docs/contributing.md; runner: tests/docs/markdown.py). One real EPMD and one
real ``erl@127.0.0.1`` (cookie ``secret``) serve every file; files run one after another (they
reuse node names), each in its own directory with its own HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.markdown import run_document
from tests.support.erlang import real_epmd, runtime, start_peer

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "examples").glob("**/README.md")])
ERL_NODE = "erl@127.0.0.1"
COOKIE = "secret"

pytestmark = pytest.mark.timeout(600)


def doc_env(home: Path, epmd_port: int) -> dict[str, str]:
    """The environment of a doc's commands: the shared EPMD, beamlink and tests importable,
    no BEAMLINK_/RELEASE_/ERL_ variables of the caller, unbuffered Python, a plain terminal."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BEAMLINK_", "RELEASE_", "ERL_"))}
    env.update(
        HOME=str(home), ERL_EPMD_PORT=str(epmd_port), PYTHONUNBUFFERED="1", TERM="dumb",
        COLUMNS="100",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    )
    return env


@pytest.fixture(scope="module")
def epmd_with_erl() -> Iterator[int]:
    """A private EPMD port with ``erl@127.0.0.1`` registered on it."""
    rt = runtime("otp25")
    with real_epmd() as port:
        erl = start_peer(rt, ERL_NODE, COOKIE, env={"ERL_EPMD_PORT": str(port)})
        try:
            yield port
        finally:
            erl.stop()


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_examples_run_as_documented(doc: Path, epmd_with_erl: int, tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    failures = run_document(doc.relative_to(ROOT), work, doc_env(home, epmd_with_erl),
                            root=ROOT)
    assert not failures, "\n\n".join(failures)
