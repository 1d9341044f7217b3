"""Every example of README.md, docs/*.md and examples/**/README.md runs and prints what the doc
shows (conventions: docs/contributing.md; runner: tests/docs/markdown.py). One real EPMD and one
real ``erl@127.0.0.1`` (cookie ``secret``) serve every file; files run one after another (they
reuse node names), each in its own directory with its own HOME."""

from __future__ import annotations

import os
import re
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
# The shared EPMD listens on 127.0.0.1-127.0.0.10 (the demo's nodes use 127.0.0.2...).
EPMD_ADDRESSES = ",".join(f"127.0.0.{n}" for n in range(1, 11))

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
    with real_epmd(EPMD_ADDRESSES) as port:
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
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


LINK = re.compile(r"\]\(([^)\s]+)\)|`(\.\./[^`]+)`")


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_relative_links_stay_in_the_repository_and_exist(doc: Path) -> None:
    broken = []
    for n, line in enumerate(doc.read_text().splitlines(), 1):
        for match in LINK.finditer(line):
            target = (match.group(1) or match.group(2)).split("#", 1)[0]
            if not target or re.match(r"[a-z]+:", target):
                continue
            path = (doc.parent / target).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}:{n}: {target}")
    assert not broken, "links outside the repository or to missing files:\n" + "\n".join(broken)
