"""Every ```python and ```bash block of README.md and of every page under docs/ runs as written (the documentation
must not rot). One test per block, named `page:line:language`.

Each block runs in a scratch copy of the repository (so `outputs/`, shipped policies and the like are written there,
never here), offline, with the repository's Python environment on PATH and the copy first on PYTHONPATH. Hub ids
named in the pages are swapped for tiny local stand-ins built here (`SWAPS`). Python blocks run as a script; bash
blocks run command by command (lines joined at a trailing backslash, comment lines dropped) with bash.

A block runs to completion and must succeed, unless an HTML comment on the line before it says otherwise:

    <!-- readme-test: RULE; RULE; ... -->        (or `doc-test:`, the same marker)
    RULE   := ["COMMAND PREFIX" =>] ACTION        (with a prefix, only the commands starting with it)
    ACTION := skip: REASON                         not run (GPU-only, needs the Hub, ...)
            | xfail: REASON                        must fail for now; the test fails once it passes
            | interrupt after "TEXT"               a long command: Ctrl-C to its process group once TEXT is printed;
                                                   it must then exit with 130, no traceback, naming saved files
                                                   that exist (or finish successfully before that)
            | first: COMMAND                       run COMMAND (to completion) before, e.g. to produce an input

A new block needs nothing to be tested; a rule that matches no command, a marker not attached to a block, or an
unknown code language fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest
from hub_layouts import build_dream_checkpoint, build_llada_checkpoint
from interrupting import REPO, interrupt_when

#: The Markdown files whose code blocks run: the README and every page of the documentation site.
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
RUNNABLE = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
NOT_CODE = {"bibtex", "text", "json", "yaml", "toml", "csv", "diff"}
COMMAND_TIMEOUT = 600  # seconds; the machine may be shared, these are upper bounds, not expectations


def _bert(folder: Path) -> Path:
    from standins import build_bert

    return build_bert(folder)


def _custom_generate_repo(folder: Path) -> Path:
    from standins import copy_custom_generate_repo

    return copy_custom_generate_repo(folder)


#: Hub id named in a page -> builder of a local stand-in (called with an empty folder, returns the path to use);
#: None = no stand-in yet: the blocks naming the id are skipped, saying so. Adding an id is one line.
SWAPS: dict[str, Optional[Callable[[Path], Path]]] = {
    "answerdotai/ModernBERT-base": _bert,
    "google-bert/bert-base-uncased": _bert,
    "me/diffusion-generate": _custom_generate_repo,
    "GSAI-ML/LLaDA-8B-Instruct": build_llada_checkpoint,  # tiny random, the published layout (hub_layouts.py)
    "Dream-org/Dream-v0-Instruct-7B": build_dream_checkpoint,
}


# ------------------------------------------------------------------------------------------------ parsing
@dataclass
class Rule:
    action: str  # skip | xfail | interrupt | first
    argument: str
    prefix: Optional[str] = None


@dataclass
class Block:
    lang: str
    code: str
    line: int  # of the opening fence
    rules: list[Rule] = field(default_factory=list)
    source: str = "README.md"  # the page, relative to the repository root

    @property
    def name(self) -> str:
        return f"{self.source}:{self.line}:{self.lang}"


_MARKER = re.compile(r"^<!--\s*(?:readme|doc)-test:(.*?)-->\s*$")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)\s*([\w+-]*)")
_RULE = re.compile(
    r'^(?:"(?P<prefix>[^"]+)"\s*=>\s*)?(?:(?P<kind>skip|xfail|first):\s*(?P<text>.+)|interrupt after "(?P<ready>[^"]+)")$'
)


def parse_rules(text: str, where: str) -> list[Rule]:
    rules = []
    for part in (p.strip() for p in text.split(";")):
        match = _RULE.match(part)
        if match is None:
            raise ValueError(f"{where}: cannot read the doc-test rule {part!r} (see tests/test_doc_code_blocks.py).")
        if match["ready"]:
            rules.append(Rule("interrupt", match["ready"], match["prefix"]))
        else:
            rules.append(Rule(match["kind"], match["text"].strip(), match["prefix"]))
    return rules


def parse_blocks(text: str, source: str = "README.md") -> list[Block]:
    """The fenced code blocks of a Markdown text, with the doc-test rules of the comment just before each; `source`
    names the page in blocks and errors."""
    blocks: list[Block] = []
    lines = text.splitlines()
    pending: Optional[tuple[int, list[Rule]]] = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        fence = _FENCE.match(line)
        if marker:
            if pending is not None:
                raise ValueError(f"{source}:{pending[0]}: doc-test marker not followed by a code block.")
            pending = (i + 1, parse_rules(marker.group(1), f"{source}:{i + 1}"))
        elif fence:
            ticks, lang = fence.group(1), fence.group(2).lower()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(ticks)), None)
            if end is None:
                raise ValueError(f"{source}:{i + 1}: code block never closed.")
            rules = pending[1] if pending is not None and pending[0] == i else []
            if pending is not None and pending[0] != i:
                raise ValueError(f"{source}:{pending[0]}: doc-test marker not on the line before a code block.")
            blocks.append(Block(lang, "\n".join(lines[i + 1 : end]) + "\n", i + 1, rules, source))
            pending, i = None, end
        elif line.strip() and pending is not None:
            raise ValueError(f"{source}:{pending[0]}: doc-test marker not on the line before a code block.")
        i += 1
    if pending is not None:
        raise ValueError(f"{source}:{pending[0]}: doc-test marker not followed by a code block.")
    return blocks


def bash_commands(code: str) -> list[str]:
    """Commands of a bash block, as written: continued lines (trailing backslash) stay together and go to bash as
    they are; blank and comment lines are dropped."""
    commands: list[str] = []
    current: list[str] = []
    for line in code.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current.append(line)
        if not line.rstrip().endswith("\\"):
            commands.append("\n".join(current))
            current = []
    if current:
        raise ValueError(f"A bash block ends with a line continuation: {current!r}")
    return commands


def one_line(command: str) -> str:
    """The command with its continuations joined and spaces collapsed: what rule prefixes are matched against."""
    return " ".join(command.replace("\\\n", " ").split())


BLOCKS = [block for path in DOC_FILES for block in parse_blocks(path.read_text(), str(path.relative_to(REPO)))]


def test_every_code_block_is_runnable_or_not_code():
    """A block in a language this test cannot run fails here instead of being ignored."""
    unknown = [b.name for b in BLOCKS if b.lang not in RUNNABLE and b.lang not in NOT_CODE]
    assert not unknown, f"code blocks in a language this test does not know: {unknown}; add it to RUNNABLE or NOT_CODE"
    assert sum(b.lang in RUNNABLE for b in BLOCKS) >= 10
    pages = {b.source for b in BLOCKS}
    assert "README.md" in pages and any(p.startswith("docs/") for p in pages), f"pages read: {sorted(pages)}"


def test_the_parser_reads_markers_and_commands():
    text = (
        "intro\n\n"
        '<!-- readme-test: "make demo" => interrupt after "evaluate:"; "make test" => skip: runs this test -->\n'
        "```bash\nmake demo   # the demo\n# a comment\nmake test \\\n    -k x\n```\n\n"
        "```python\nprint(1)\n```\n"
    )
    first, second = parse_blocks(text)
    assert (first.lang, first.line, second.lang, second.rules) == ("bash", 4, "python", [])
    assert first.rules == [Rule("interrupt", "evaluate:", "make demo"), Rule("skip", "runs this test", "make test")]
    assert bash_commands(first.code) == ["make demo   # the demo", "make test \\\n    -k x"]
    assert one_line(bash_commands(first.code)[1]) == "make test -k x"
    (doc,) = parse_blocks("text\n<!-- doc-test: skip: needs a GPU -->\n```python\nprint(1)\n```\n", "docs/page.md")
    assert (doc.name, doc.rules) == ("docs/page.md:3:python", [Rule("skip", "needs a GPU")])
    for broken in (
        "<!-- readme-test: skip: x -->\n\ntext\n```bash\nls\n```\n",
        "<!-- readme-test: run -->\n```bash\n```\n",
        "<!-- doc-test: skip: x -->\n",
    ):
        with pytest.raises(ValueError, match="doc-test"):
            parse_blocks(broken, "docs/page.md")


# ------------------------------------------------------------------------------------------------ running
@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> dict[str, Path]:
    """The local stand-in of every swappable Hub id that has a builder, built once."""
    root = tmp_path_factory.mktemp("doc_standins")
    built: dict[int, Path] = {}
    out = {}
    for hub_id, builder in SWAPS.items():
        if builder is not None:
            if id(builder) not in built:
                built[id(builder)] = builder(root / re.sub(r"\W", "_", hub_id))
            out[hub_id] = built[id(builder)]
    return out


def _repository_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files (what a fresh clone plus local edits holds)."""
    if (REPO / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
        ).stdout
        return [name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]
    skip = {".venv", ".git", "outputs", "__pycache__", ".pytest_cache", ".ruff_cache"}
    return [
        str(p.relative_to(REPO))
        for p in REPO.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(REPO).parts) and not p.name.endswith(".pyc")
    ]


def make_sandbox(root: Path) -> Path:
    """A scratch copy of the repository with a `.venv` that is the running environment seen through links, and a
    fresh install stamp, so `make demo` there runs the demo and never installs anything."""
    for name in _repository_files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    env_root = Path(sys.prefix)
    if not (env_root / "pyvenv.cfg").is_file():
        return root  # not a virtual environment: `make` commands fail in run_command, saying why
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy2(env_root / "pyvenv.cfg", venv / "pyvenv.cfg")  # python finds its environment next to bin/
    for entry in (env_root / "bin").iterdir():
        (venv / "bin" / entry.name).symlink_to(entry)
    for lib in ("lib", "lib64"):
        if (env_root / lib).exists():
            (venv / lib).symlink_to(env_root / lib, target_is_directory=True)
    (venv / ".installed").touch()  # newer than the copied pyproject.toml: `make` sees the environment as installed
    return root


def environment(sandbox: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(sandbox)  # the copy, not the editable install, is imported
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", MPLBACKEND="Agg")
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _saved_paths(message: str) -> list[str]:
    return re.findall(r"(\S+?\.(?:json|csv)|\S*checkpoint-\d+)(?=[\s;,)]|$)", message)


def run_command(command: str, rule: Optional[Rule], sandbox: Path, env: dict[str, str]) -> None:
    if one_line(command).startswith("make ") and not (sandbox / ".venv").is_dir():
        pytest.fail(f"`{command}` needs the tests to run in a virtual environment (`make .venv/.installed`).")
    if rule is None or rule.action != "interrupt":
        done = subprocess.run(
            ["bash", "-c", command], cwd=sandbox, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        assert done.returncode == 0, (
            f"`{command}` exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return
    text = rule.argument
    outcome = interrupt_when(
        command, lambda out, err: text in out or text in err, cwd=sandbox, env=env, timeout=COMMAND_TIMEOUT
    )
    if not outcome.interrupted:  # it finished before printing its first progress: it must have succeeded
        assert outcome.returncode == 0, f"`{command}` (never reached {text!r}): " + outcome.describe()
        return
    assert outcome.returncode in (130, -signal.SIGINT), f"`{command}` after Ctrl-C: " + outcome.describe()
    assert "Traceback" not in outcome.stderr, f"`{command}` after Ctrl-C: " + outcome.describe()
    said = [line for line in outcome.stderr.splitlines() if "interrupted" in line]
    assert said, f"`{command}` said nothing about the interrupt: " + outcome.describe()
    saved = _saved_paths(said[-1])
    assert saved and all((sandbox / path).exists() for path in saved), f"`{command}`: {said[-1]}"


def _rules_for(block: Block, command: Optional[str]) -> list[Rule]:
    return [
        r for r in block.rules if r.prefix is None or (command is not None and one_line(command).startswith(r.prefix))
    ]


def _swap(code: str, block: Block, standins: dict[str, Path]) -> str:
    for hub_id, builder in SWAPS.items():
        if hub_id in code:
            if builder is None:
                pytest.skip(f"{block.name} names {hub_id}, which has no local stand-in yet (SWAPS in {__name__})")
            code = code.replace(hub_id, str(standins[hub_id]))
    return code


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in RUNNABLE], ids=lambda b: b.name)
def test_doc_block_runs_as_written(block: Block, standins, tmp_path):
    commands = bash_commands(block.code) if RUNNABLE[block.lang] == "bash" else [None]
    for rule in block.rules:
        if rule.prefix is not None and not any(
            c is not None and one_line(c).startswith(rule.prefix) for c in commands
        ):
            pytest.fail(f"{block.name}: the rule for {rule.prefix!r} matches no command of the block.")
    plan = [(command, _rules_for(block, command)) for command in commands]
    skipped = [(command, r.argument) for command, rules in plan for r in rules if r.action == "skip"]
    if len(skipped) == len(plan):
        pytest.skip(f"{block.name}: " + "; ".join(dict.fromkeys(reason for _, reason in skipped)))
    expected_failure = next((r.argument for r in block.rules if r.action == "xfail"), None)
    sandbox = make_sandbox(tmp_path / "repo")
    env = environment(sandbox)
    try:
        for command, rules in plan:
            if any(r.action == "skip" for r in rules):
                continue
            for setup in (r for r in rules if r.action == "first"):
                run_command(_swap(setup.argument, block, standins), None, sandbox, env)
            main = next((r for r in rules if r.action == "interrupt"), None)
            if command is None:  # a Python block: one script
                page = re.sub(r"\W", "_", block.source)
                script = sandbox / f"doc_block_{page}_{block.line}.py"
                script.write_text(_swap(block.code, block, standins))
                command = f"python {script.name}"
            run_command(_swap(command, block, standins), main, sandbox, env)
    except AssertionError:
        if expected_failure is None:
            raise
        pytest.xfail(f"{block.name}: {expected_failure}")
    if expected_failure is not None:
        pytest.fail(f"{block.name} runs now: remove its `xfail: {expected_failure}` marker from {block.source}.")
