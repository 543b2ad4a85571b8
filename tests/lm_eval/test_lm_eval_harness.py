"""lm-eval with the `hf_unmask` model on the shipped offline task: the command line and `simple_evaluate` give what
the library's own `generate` and the task's verifier give, with NFE in the logged samples and the results."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager
from lm_eval_runs import LIMIT, MODEL_ARGS, TASK

from hf_unmask.generation import cut_at_eos
from hf_unmask.lm_eval import TASKS_DIR, HFUnmaskLM, simple_evaluate
from hf_unmask.lm_eval.tasks import program_trace_rows
from hf_unmask.models import load_dllm
from hf_unmask.strategies import ConfidenceThreshold
from hf_unmask.tasks import get_task


def library_generations(prompts: list[str], max_new_tokens: int = 16) -> list[tuple[str, int, list[int]]]:
    """`(completion, NFE, generated ids)` of each prompt by the library alone: one prompt at a time, L = 16, BL 8."""
    model, tokenizer = load_dllm("builtin")
    out = []
    for prompt in prompts:
        input_ids = tokenizer(prompt, return_tensors="pt").input_ids
        gen = model.generate(
            input_ids, strategy=ConfidenceThreshold(0.9), max_new_tokens=max_new_tokens, block_length=8,
            return_dict_in_generate=True,
        )  # fmt: skip
        ids = gen.sequences[0, input_ids.shape[1] :].tolist()
        text = tokenizer.decode(cut_at_eos(ids, {tokenizer.eos_token_id}), skip_special_tokens=True).strip()
        out.append((text, int(gen.nfe[0]), ids))
    return out


@pytest.fixture(scope="module")
def reference():
    rows = program_trace_rows()[:LIMIT]
    return rows, library_generations([row["prompt"] for row in rows])


@pytest.fixture(scope="module")
def in_process_run():
    results = simple_evaluate(
        model="hf_unmask", model_args=MODEL_ARGS, tasks=[TASK], task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
        limit=LIMIT, batch_size=5, log_samples=True,
    )  # fmt: skip
    return results, sorted(results["samples"][TASK], key=lambda s: s["doc_id"])


def check_against_library(results, samples, reference) -> None:
    rows, generated = reference
    task = get_task("program_trace")
    assert [s["doc_id"] for s in samples] == list(range(LIMIT))
    eos = 2
    for sample, row, (text, nfe, ids) in zip(samples, rows, generated):
        assert sample["doc"]["prompt"] == row["prompt"]
        assert sample["resps"] == [[text]]
        assert sample["exact_match"] == float(task.is_correct(text, row["reference"])), sample
        assert sample["nfe"] == nfe
        assert sample["gen_tokens"] == len(cut_at_eos(ids, {eos}, keep_eos=True))
    expected_accuracy = sum(task.is_correct(t, r["reference"]) for (t, _, _), r in zip(generated, rows)) / LIMIT
    row = results["results"][TASK]
    assert row["exact_match,final_answer"] == pytest.approx(expected_accuracy)
    assert 0 < expected_accuracy < 1  # the comparison sees right and wrong answers
    nfes, tokens = [g[1] for g in generated], [s["gen_tokens"] for s in samples]
    assert row["nfe,none"] == pytest.approx(sum(nfes) / LIMIT)
    assert row["gen_tokens,none"] == pytest.approx(sum(tokens) / LIMIT)
    assert row["tokens_per_forward,none"] == pytest.approx(sum(tokens) / sum(nfes))
    assert results["higher_is_better"][TASK]["nfe"] is False


def test_simple_evaluate_matches_the_library_generate_and_the_task_verifier(in_process_run, reference):
    results, samples = in_process_run
    check_against_library(results, samples, reference)
    assert results["config"]["hf_unmask_strategy"] == "confidence_threshold:threshold=0.9"


def test_the_command_line_saves_the_same_results_and_samples_with_nfe(one_process_cli_run, reference):
    results, samples = one_process_cli_run
    check_against_library(results, samples, reference)


def test_a_model_object_and_lm_evals_own_simple_evaluate_report_nfe_after_attach(reference):
    import lm_eval

    from hf_unmask.lm_eval import attach_generation_stats

    lm = HFUnmaskLM(pretrained="tiny-dllm", block_length=8, strategy=ConfidenceThreshold(0.9), batch_size=3)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=[TASK],
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False),
        limit=LIMIT,
    )
    assert "nfe" not in results["samples"][TASK][0]  # lm-eval alone cannot log it
    results = attach_generation_stats(results, lm)
    check_against_library(results, sorted(results["samples"][TASK], key=lambda s: s["doc_id"]), reference)
    assert lm.generation_stats.records == {}  # consumed: a second run on the same model starts afresh


def requests(prompts: list[str], **gen_kwargs) -> list[Instance]:
    return [Instance("generate_until", {}, (p, dict(gen_kwargs)), 0, ("t", i, 1)) for i, p in enumerate(prompts)]


@pytest.fixture(scope="module")
def lm():
    return HFUnmaskLM(
        pretrained="tiny-dllm", block_length=8, strategy="confidence_threshold:threshold=0.9", batch_size=4
    )


def test_until_as_a_string_and_as_a_list_cuts_at_the_first_occurrence(lm, reference):
    rows, generated = reference
    prompts = [row["prompt"] for row in rows]
    texts = [text for text, _, _ in generated]
    assert lm.generate_until(requests(prompts, until="answer", max_gen_toks=16)) == [
        t.split("answer")[0] for t in texts
    ]
    cut = lm.generate_until(requests(prompts, until=["answer", " ;"], max_gen_toks=16))
    assert cut == [t.split(" ;")[0] for t in texts]  # " ;" comes before "answer": the earliest occurrence wins
    assert all(";" not in c and "answer" not in c for c in cut) and all(";" in t for t in texts)


def test_max_gen_toks_rounds_L_up_to_the_block_length_and_never_returns_more_tokens(lm, reference):
    rows = reference[0][:4]
    _, tokenizer = load_dllm("builtin")
    lm.generation_stats.clear()
    out = lm.generate_until(requests([row["prompt"] for row in rows], until=[], max_gen_toks=5))
    # 5 tokens asked for, block length 8: L = 8 (one block), and the completion keeps the first 5 positions
    for text, (_, _, ids) in zip(out, library_generations([row["prompt"] for row in rows], max_new_tokens=8)):
        assert text == tokenizer.decode(cut_at_eos(ids[:5], {2}), skip_special_tokens=True).strip()
        assert len(tokenizer(text, add_special_tokens=False).input_ids) <= 5
    records = [entry for entries in lm.generation_stats.records.values() for entry in entries]
    assert len(records) == 4 and all(0 < tokens <= 5 for _, tokens in records)
    lm.generation_stats.clear()


def test_chat_template_runs_through_the_tokenizers_template_without_a_second_bos(tmp_path, reference):
    _, tokenizer = load_dllm("builtin")
    tokenizer.chat_template = (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% endif %}{% endfor %}"
    )
    tokenizer.save_pretrained(tmp_path / "tok")
    seen: list[torch.Tensor] = []
    results = simple_evaluate(
        model="hf_unmask", model_args=f"{MODEL_ARGS},tokenizer={tmp_path / 'tok'}", tasks=[TASK],
        task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False), limit=4, apply_chat_template=True,
        system_instruction="ignored by this template", log_samples=True,
    )  # fmt: skip
    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    rows, generated = reference
    for sample, row, (text, nfe, _) in zip(samples, rows, generated):
        context = sample["arguments"][0][0]
        assert context == "[BOS]" + row["prompt"]  # rendered by the template, system message and all
        assert sample["resps"] == [[text]] and sample["nfe"] == nfe  # same canvas as without the template
    lm = HFUnmaskLM(
        pretrained="tiny-dllm", tokenizer=str(tmp_path / "tok"), block_length=8, strategy="top_k_confidence"
    )
    original = lm.model.generate
    lm.model.generate = lambda input_ids, **kw: seen.append(input_ids) or original(input_ids, **kw)
    rendered = lm.apply_chat_template([{"role": "user", "content": rows[0]["prompt"]}])
    lm.generate_until(requests([rendered], until=[], max_gen_toks=16))
    assert seen[0][0].tolist() == tokenizer(rows[0]["prompt"]).input_ids  # one BOS, from the template
    assert lm.chat_template(True) == tokenizer.chat_template


def test_a_model_without_chat_template_says_so(lm):
    from hf_unmask.lm_eval import ModelArgumentError

    with pytest.raises(ModelArgumentError, match="has no chat template. Drop --apply_chat_template"):
        lm.apply_chat_template([{"role": "user", "content": "sort : 3 1 2"}])


def test_a_shipped_learned_policy_with_a_knob_generates_as_the_library_does(reference):
    from hf_unmask import load_builtin_policy

    rows = reference[0][:4]
    lm = HFUnmaskLM(pretrained="builtin", strategy="tiny-dllm-program_trace-bl8-alpha1:unmask_beta=2", block_length=8)
    assert lm.strategy.unmask_beta == 2.0
    got = lm.generate_until(requests([row["prompt"] for row in rows], until=[], max_gen_toks=16))
    model, tokenizer = load_dllm("builtin")
    policy = load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1", unmask_beta=2.0)
    for text, row in zip(got, rows):
        input_ids = tokenizer(row["prompt"], return_tensors="pt").input_ids
        out = model.generate(input_ids, strategy=policy, max_new_tokens=16, block_length=8)
        ids = cut_at_eos(out[0, input_ids.shape[1] :].tolist(), {2})
        assert text == tokenizer.decode(ids, skip_special_tokens=True).strip()
