"""The doc runner itself: a wrong example fails with its file, line and a diff; right ones pass;
markers, servers, prompts, files and wildcards behave as docs/contributing.md says."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.docs.markdown import DocError, matches, parse, run_document

ROOT = Path(__file__).resolve().parents[2]
FENCE = "```"

pytestmark = pytest.mark.timeout(120)


def run(tmp_path: Path, text: str) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, HOME=str(tmp_path), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    return run_document(Path("doc.md"), work, env, root=tmp_path)


def md(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_a_wrong_python_check_fails_naming_the_line(tmp_path: Path) -> None:
    failures = run(tmp_path, md("Intro", "", f"{FENCE}python", "x = 2", "x + 1  # -> 4", FENCE))
    assert len(failures) == 1
    assert "doc.md:5: the doc shows 4, the code gives 3" in failures[0]
    assert run(tmp_path / "ok", md(f"{FENCE}python", "x = 2", "x + 1  # -> 3", FENCE)) == []


def test_a_wrong_python_output_block_fails_with_a_diff(tmp_path: Path) -> None:
    doc = md(f"{FENCE}python", "print('hello')", "print(sorted({3, 1}))", FENCE,
             f"{FENCE}text", "hello", "[3, 1]", FENCE)
    [failure] = run(tmp_path, doc)
    assert failure.startswith("doc.md:6: the python block above: the output differs")
    assert "-[3, 1]\n+[1, 3]" in failure


def test_a_raising_python_block_fails_with_the_doc_line_in_its_traceback(tmp_path: Path) -> None:
    [failure] = run(tmp_path, md(f"{FENCE}python", "import json", "json.loads('{')", FENCE))
    assert 'File "doc.md", line 3' in failure
    assert "pyblock.py" not in failure.split("raised:", 1)[1]


def test_a_wrong_console_output_fails_and_the_right_one_passes(tmp_path: Path) -> None:
    wrong = md(f"{FENCE}console", "$ echo one; echo two", "one", "three", FENCE)
    [failure] = run(tmp_path, wrong)
    assert failure.startswith("doc.md:2: $ echo one; echo two (exit 0): the output differs")
    assert "-three\n+two" in failure
    right = md(f"{FENCE}console", "$ export GREETING=hi", "$ cd /", "$ echo $GREETING; pwd",
               "hi", "/", "$ echo oops >&2; exit 3", "oops", "$", FENCE)
    assert run(tmp_path / "ok", right) == []


def test_skipped_blocks_do_not_run(tmp_path: Path) -> None:
    doc = md("<!-- doc-test: skip needs Kubernetes -->", f"{FENCE}console", "$ false", "nope",
             FENCE)
    assert run(tmp_path, doc) == []


def test_markers_must_be_known_and_placed_before_a_fence(tmp_path: Path) -> None:
    with pytest.raises(DocError, match=r"doc.md:1: unknown doc-test marker 'skipp'"):
        parse(md("<!-- doc-test: skipp x -->", f"{FENCE}python", FENCE), Path("doc.md"))
    with pytest.raises(DocError, match=r"doc.md:2: a doc-test marker must be right before"):
        parse(md("<!-- doc-test: skip x -->", "prose", f"{FENCE}python", FENCE), Path("doc.md"))
    with pytest.raises(DocError, match=r"doc.md:2: the fence opened here is never closed"):
        parse(md("", f"{FENCE}python", "x = 1"), Path("doc.md"))


def test_a_server_keeps_running_for_the_next_blocks_and_is_stopped_at_the_end(
    tmp_path: Path,
) -> None:
    server = (f"{sys.executable} -c \"import time, pathlib; print('up', flush=True); "
              "pathlib.Path('alive').write_text('yes'); time.sleep(600)\"")
    doc = md(f"{FENCE}console", f"$ {server}", "up", FENCE, "From another shell:",
             f"{FENCE}console", "$ cat alive", "yes", FENCE)
    assert run(tmp_path, doc) == []


def test_a_python_block_that_never_ends_fails(tmp_path: Path) -> None:
    doc = md("<!-- doc-test: timeout 2 -->", f"{FENCE}python", "import time", "time.sleep(60)",
             FENCE)
    [failure] = run(tmp_path, doc)
    assert "doc.md:3: the python block did not end within 2 s" in failure


def test_files_prompts_and_vary(tmp_path: Path) -> None:
    doc = md(
        f"{FENCE}python", "# pkg/greet.py", "def hello(who):", "    return f'hello {who}'", FENCE,
        "<!-- doc-test: vary \\d{4,} -->",
        "<!-- doc-test: prompt >>> -->",
        f"{FENCE}console",
        "$ echo pid $$",
        "pid 12345",
        f"$ {sys.executable} -i -q -c 'import sys; sys.ps1 = \">>> \"'",
        ">>> from pkg.greet import hello",
        ">>> hello('doc')",
        "'hello doc'",
        ">>> ^D",
        FENCE,
    )
    assert run(tmp_path, doc) == []
    wrong = doc.replace("'hello doc'", "'hello you'")
    [failure] = run(tmp_path / "wrong", wrong)
    assert "-'hello you'\n+'hello doc'" in failure


def test_wildcards() -> None:
    assert matches("a\n...\nz", "a\nb\nc\nz\n")
    assert matches("a\nz", "a\nX WARNING beamlink.connection.watchdog: event loop blocked\nz")
    assert matches("a\n...\nz", "a\nz")
    assert not matches("a\n...\nz", "a\nb")
    assert matches("port ... up", "port 4369 up")
    assert matches("at 2026-11-26 21:15:41,402 ok", "at 2027-01-02 03:04:05,678 ok")
    assert not matches("up (port 41629)", "up (port 41630)")
    assert matches("up (port 41629)", "up (port 41630)", [r"\d{4,}"])
    assert not matches("[3/3]", "[4/4]", [r"\d{4,}"])


printable = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@given(st.lists(printable.filter(lambda s: "..." not in s), max_size=6))
def test_any_literal_text_matches_itself_and_not_an_extra_line(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert matches(text, text)
    assert not matches(text, text + "\nextra line")
