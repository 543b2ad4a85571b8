"""Every docstring example of the hf_unmask package runs as written: offline, on the built-in model, one test per
docstring. An example that needs a GPU or the Hub is marked `# doctest: +SKIP`, and its docstring says why in words
that start with "not run in tests" (e.g. "(not run in tests: it downloads the dataset)").

Examples sit in Markdown code fences (```` ```python ```` ... ```` ``` ````) so that they render on the Hub and in
IDEs; the fences are not part of an example's expected output. Outputs compare with ELLIPSIS (`...` matches
anything) and NORMALIZE_WHITESPACE (a line break in the expected output matches a space).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import random
import re

import pytest
import torch

import hf_unmask

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)


class FencedDocTestParser(doctest.DocTestParser):
    """A doctest parser for docstrings whose examples are wrapped in Markdown code fences: a fence line ends the
    expected output before it, as a blank line does."""

    def parse(self, string: str, name: str = "<string>") -> list:
        return super().parse(_FENCE.sub("", string), name)


def docstring_tests(package=hf_unmask) -> list[doctest.DocTest]:
    """The doctests of every module of `package` that has examples, in a stable order."""
    finder = doctest.DocTestFinder(parser=FencedDocTestParser())
    found = []
    for info in sorted(pkgutil.walk_packages(package.__path__, package.__name__ + "."), key=lambda m: m.name):
        module = importlib.import_module(info.name)
        found += [test for test in finder.find(module, info.name) if test.examples]
    return sorted(found, key=lambda test: test.name)


DOCTESTS = docstring_tests()


def run_doctest(test: doctest.DocTest) -> tuple[doctest.TestResults, str]:
    """Run one docstring's examples (seeded) and return the results with the failure report."""
    report: list[str] = []
    random.seed(0)
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    results = runner.run(test, out=report.append)
    return results, "".join(report)


@pytest.mark.parametrize("test", DOCTESTS, ids=[test.name for test in DOCTESTS])
def test_docstring_examples_run(test):
    results, report = run_doctest(test)
    assert results.failed == 0, f"{test.name} ({test.filename}:{test.lineno}):\n{report}"
    if any(example.options.get(doctest.SKIP) for example in test.examples):
        assert "not run in tests" in test.docstring.lower(), (
            f"{test.name} ({test.filename}:{test.lineno}) skips an example without saying why: write "
            "'(not run in tests: REASON)' before it, or make it run offline on the built-in model."
        )


def test_the_examples_are_found_and_a_wrong_output_fails():
    names = {test.name for test in DOCTESTS}
    for name in ("hf_unmask.generation.schedule.num_transfer_tokens_at", "hf_unmask.evaluation", "hf_unmask._paths"):
        assert any(n == name or n.startswith(name + ".") for n in names), name
    assert len(DOCTESTS) > 80
    parser = FencedDocTestParser()
    broken = parser.get_doctest(  # the example of num_transfer_tokens_at with a wrong expected output
        "```python\n>>> num_transfer_tokens_at(torch.tensor([10]), 4, 2).tolist()\n[3]\n```\n",
        dict(vars(importlib.import_module("hf_unmask.generation.schedule"))),
        "broken",
        None,
        0,
    )
    results, report = run_doctest(broken)
    assert results.failed == 1 and "Expected:\n    [3]\nGot:\n    [2]" in report
