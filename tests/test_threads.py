"""hf_unmask._threads: the thread count follows the idle cores (read from /proc/stat) unless the user chose one, is
shared among a launcher's processes, and the commands print it."""

from __future__ import annotations

import argparse

import pytest
import torch

from hf_unmask import _threads
from hf_unmask._threads import choose_cpu_threads, idle_cores, set_cpu_threads


def stat(*cores: tuple[int, int]) -> str:
    """/proc/stat text with the given (busy, idle) jiffies per core (busy split over user and system)."""
    lines = ["cpu  1 2 3 4 5 6 7 8 9 10", "intr 12345 0 0"]
    lines += [f"cpu{i} {busy // 2} 0 {busy - busy // 2} {idle} 0 0 0 0 0 0" for i, (busy, idle) in enumerate(cores)]
    return "\n".join(lines) + "\nctxt 99\n"


def test_idle_cores_from_two_readings():
    before = stat((100, 100), (100, 100), (100, 100), (100, 100))
    after = stat((200, 100), (150, 150), (100, 200), (100, 200))  # busy, half busy, idle, idle
    assert idle_cores(before, after) == pytest.approx(2.5)
    assert idle_cores(before, after, cpus={0, 1}) == pytest.approx(0.5)  # only the cores we may run on count
    assert idle_cores(before, after, cpus={2}) == pytest.approx(1.0)
    assert idle_cores(before, after, cpus={7}) is None and idle_cores(before, before) is None
    with_iowait = "cpu0 0 0 0 100 0 0 0 0\n", "cpu0 0 0 0 150 50 0 0 0\n"  # waiting on disk is idle
    assert idle_cores(*with_iowait) == pytest.approx(1.0)


FACTS = dict(environ={}, torch_threads=2, torch_default=2, cpus=2)


@pytest.mark.parametrize(
    ("idle", "local_processes", "threads"),
    [
        (2.0, 1, 2),  # idle machine: torch's default
        (1.9, 1, 2),
        (1.02, 1, 1),  # beside one busy process on 2 cores
        (1.6, 1, 1),  # a core that is partly busy is not free
        (0.1, 1, 1),  # never 0
        (2.0, 2, 1),  # two processes of a launcher share the two cores
        (None, 1, 2),  # no reading: the allowed cores
    ],
)
def test_idle_cores_decide(idle, local_processes, threads):
    choice = choose_cpu_threads(**FACTS, idle=idle, local_processes=local_processes)
    assert (choice.threads, choice.source, choice.changed) == (threads, "idle cores", True)


def test_never_more_than_torch_default_nor_the_allowed_cores():
    many = dict(environ={}, torch_threads=8, torch_default=8)
    assert choose_cpu_threads(**many, cpus=16, idle=16.0).threads == 8  # hyperthreads: torch counts physical cores
    assert choose_cpu_threads(**many, cpus=4, idle=3.9).threads == 4  # affinity to 4 cores
    assert choose_cpu_threads(**many, cpus=16, idle=12.5, local_processes=4).threads == 3


def test_the_users_choice_wins():
    assert choose_cpu_threads(3, **FACTS, idle=0.0) == _threads.ThreadChoice(3, "argument", "as asked", True)
    env = {"HF_UNMASK_NUM_THREADS": "4", "OMP_NUM_THREADS": "1"}
    choice = choose_cpu_threads(**{**FACTS, "environ": env}, idle=0.0)
    assert (choice.threads, choice.source, choice.changed) == (4, "HF_UNMASK_NUM_THREADS", True)
    choice = choose_cpu_threads(**{**FACTS, "environ": {"OMP_NUM_THREADS": "2"}}, idle=0.0)
    assert (choice.threads, choice.source, choice.changed) == (2, "OMP_NUM_THREADS", False)  # torch follows it
    assert "OMP_NUM_THREADS=2 in the environment" in choice.message()
    choice = choose_cpu_threads(**{**FACTS, "torch_threads": 1}, idle=2.0)  # torch.set_num_threads(1) before
    assert (choice.threads, choice.source, choice.changed) == (1, "torch", False)


@pytest.mark.parametrize("bad", ["0", "-1", "many", "1.5"])
def test_a_bad_count_says_what_to_give(bad):
    with pytest.raises(ValueError, match="HF_UNMASK_NUM_THREADS must be a positive integer"):
        choose_cpu_threads(**{**FACTS, "environ": {"HF_UNMASK_NUM_THREADS": bad}}, idle=2.0)
    with pytest.raises(ValueError, match="positive integer"):
        choose_cpu_threads(0, **FACTS, idle=2.0)


@pytest.fixture
def torch_threads():
    """Restore torch's thread count after the test, and make the current count look like torch's default."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_set_cpu_threads_measures_and_applies(torch_threads, monkeypatch):
    for name in ("HF_UNMASK_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(2)
    monkeypatch.setattr(_threads, "_torch_default_threads", lambda: 2)
    monkeypatch.setattr(_threads, "_allowed_cpus", lambda: {0, 1})
    readings = iter([stat((100, 100), (100, 100)), stat((200, 100), (100, 200))])  # core 0 busy, core 1 idle
    choice = set_cpu_threads(read_stat=lambda: next(readings), sample_seconds=0, local_processes=1)
    assert (choice.threads, torch.get_num_threads()) == (1, 1)
    assert choice.message(flag="--num-threads") == (
        "hf_unmask: 1 CPU thread (1.0 of 2 cores idle); to change it: --num-threads N or HF_UNMASK_NUM_THREADS=N"
    )
    # now torch's count (1) differs from its default (2): an earlier choice, kept, and nothing measured
    kept = set_cpu_threads(read_stat=lambda: pytest.fail("measured although the user chose"))
    assert (kept.source, kept.changed, torch.get_num_threads()) == ("torch", False, 1)
    monkeypatch.setenv("HF_UNMASK_NUM_THREADS", "2")
    assert set_cpu_threads().threads == 2 and torch.get_num_threads() == 2


def test_the_launchers_local_processes_share_the_cores(torch_threads, monkeypatch):
    for name in ("HF_UNMASK_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    torch.set_num_threads(2)
    monkeypatch.setattr(_threads, "_torch_default_threads", lambda: 2)
    monkeypatch.setattr(_threads, "_allowed_cpus", lambda: {0, 1})
    readings = iter([stat((0, 100), (0, 100)), stat((0, 200), (0, 200))])
    choice = set_cpu_threads(read_stat=lambda: next(readings), sample_seconds=0)
    assert choice.threads == 1 and "shared by 2 processes" in choice.detail


def test_the_commands_print_the_line(monkeypatch, capsys, torch_threads):
    from hf_unmask import demo

    ran = []
    monkeypatch.setattr(demo, "run_demo", lambda **kwargs: ran.append(kwargs))
    assert demo.main(["--num-threads", "1", "--no-stream"]) == 0 and ran
    assert "hf_unmask: 1 CPU thread (as asked); to change it: --num-threads N" in capsys.readouterr().out
    parser = argparse.ArgumentParser()
    demo.add_demo_arguments(parser)
    assert parser.parse_args([]).num_threads is None  # measured unless given
