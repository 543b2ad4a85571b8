"""The documentation builds with warnings as errors, its links resolve, and the README stays short.

The strict build (`mkdocs build --strict`, as `make docs` runs it) fails on a broken link or anchor inside docs/, a
page missing from the navigation, and a docstring of the API reference that mkdocstrings cannot read. Links from
README.md are outside the site, so they get their own check here: every relative link of README.md and docs/ must
name an existing file. The code blocks of both run in tests/test_doc_code_blocks.py.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_LINES = 300
BUILD_TIMEOUT = 300  # seconds; about 5 s on an idle 2-core machine

_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE = re.compile(r"(`+).*?\1")


def relative_links(text: str) -> list[tuple[int, str]]:
    """`(line, target)` of every Markdown link whose target is a relative path (no URL scheme, not a bare
    `#anchor`), outside code blocks and inline code; a target's `#anchor` is dropped."""
    links = []
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif line.strip().startswith(fence):
                fence = None
            continue
        if fence is not None:
            continue
        for bracketed, bare in _LINK.findall(_INLINE_CODE.sub("", line)):
            target = bracketed or bare
            if re.match(r"^[a-zA-Z][\w+.-]*:", target) or target.startswith("#"):
                continue
            links.append((number, target.split("#", 1)[0]))
    return links


def test_relative_links_parser():
    text = (
        "[a](docs/a.md) and ![img](img.png) and [b](https://x.org/b.md) and [c](#anchor)\n"
        "[d](../d.md#part) `[not](a link)`\n```bash\n[e](inside.md)\n```\n[f](<f g.md>)\n"
    )
    assert relative_links(text) == [(1, "docs/a.md"), (1, "img.png"), (2, "../d.md"), (6, "f g.md")]


@pytest.mark.parametrize("page", [README, *sorted(DOCS.rglob("*.md"))], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path):
    broken = [
        f"{page.relative_to(REPO)}:{line}: {target}"
        for line, target in relative_links(page.read_text())
        if not (page.parent / target).exists()
    ]
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_readme_stays_short():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move the details into a page under docs/ and "
        "link it."
    )


def test_every_docs_page_is_in_the_navigation():
    """mkdocs only reports pages left out of `nav` at INFO level; a page nobody can reach is a mistake."""
    config = (REPO / "mkdocs.yml").read_text()
    listed = set(re.findall(r"([\w/.-]+\.md)\s*$", config, flags=re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages <= listed, f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"


def test_docs_build_strict(tmp_path):
    missing = [
        name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python") if not _has(name)
    ]
    if missing:
        pytest.skip(f"the documentation tools are not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml")]
        + ["--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    output = done.stdout + done.stderr
    warnings = [line for line in output.splitlines() if re.match(r"^(WARNING|ERROR)\b", line)]
    assert done.returncode == 0 and not warnings, f"mkdocs build --strict failed:\n{output[-5000:]}"
    assert (tmp_path / "site" / "reference" / "generation" / "index.html").is_file()


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
