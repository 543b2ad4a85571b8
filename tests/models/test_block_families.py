"""The block-diffusion and MoE families end to end, on tiny checkpoints laid out as the published ones and loaded
through `AutoDiffusionLM` in float32: LLaDA2.x (`llada2_moe`, block-causal, blocks of 32), SDAR (`sdar`,
block-causal, blocks of 4) and LLaDA-MoE (`lladamoe`, bidirectional).

* block-causal families: the exact block cache shows the strategy the uncached logits at every step of a
  left-padded batch;
* every family: a left-padded batch decodes each row as it decodes alone, with and without the cache;
* the families' own decoders against reference loops that run the published algorithms directly on the model
  (the published 4-D / 3-D block mask, absolute positions, the canvas up to the current block's end);
* one GRPO step of an unmasking policy with a tiny LLaDA2 as the environment, and a policy's recorded
  log-probabilities on it.

The random tiny models spread their confidence over ~150K tokens (every confidence is ~1e-4), so the thresholds
here are of that size, chosen so that every branch of each decoder is taken (asserted).
"""

from __future__ import annotations

import sys

import block_decoder_references as references
import pytest
import torch
from grpo_toys import make_trainer, policy_inputs, state_of, toy_dataset
from llada2_layouts import EOS_ID as LLADA2_EOS
from llada2_layouts import MASK_ID as LLADA2_MASK
from llada2_layouts import llada2_checkpoint
from llada_moe_layouts import llada_moe_checkpoint
from sdar_layouts import END_OF_TURN_ID as SDAR_END_OF_TURN
from sdar_layouts import EOS_ID as SDAR_EOS
from sdar_layouts import MASK_ID as SDAR_MASK
from sdar_layouts import sdar_checkpoint
from sdar_reference import published_generate_mask

from hf_unmask import AutoDiffusionLM
from hf_unmask.models.sdar import SDARForCausalLM
from hf_unmask.strategies import (
    ConfidencePolicy,
    LLaDA2Decoder,
    LLaDA21Decoder,
    SDARDecoder,
    TopKConfidence,
)

TOL = 1e-5
# LLaDA2 (blocks of 32), 2 blocks generated; its confidences lie in ~[1.0e-4, 3.5e-4], median ~2e-4
LLADA2_BLOCK, LLADA2_GEN = 32, 64
LLADA2_THRESHOLD = 2.0e-4
# SDAR (blocks of 4), 4 blocks generated; its confidences lie in ~[1.0e-4, 3.6e-4], median ~1.4e-4
SDAR_BLOCK, SDAR_GEN = 4, 16
SDAR_THRESHOLD = 2.1e-4
SDAR_STOP_IDS = (SDAR_END_OF_TURN, SDAR_EOS)


def _load(folder, **kwargs):
    kwargs.setdefault("dtype", torch.float32)
    return AutoDiffusionLM.from_pretrained(folder, **kwargs)


@pytest.fixture(scope="module")
def llada2(tmp_path_factory):
    return _load(llada2_checkpoint(tmp_path_factory))


@pytest.fixture(scope="module")
def sdar(tmp_path_factory):
    return _load(sdar_checkpoint(tmp_path_factory))


@pytest.fixture(scope="module")
def lladamoe(tmp_path_factory):
    return _load(llada_moe_checkpoint(tmp_path_factory))


def _prompts(lengths, seed=0):
    """A left-padded batch of ordinary-vocabulary ids (pad 0) and its 2-D mask."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    keep = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(16, 150000, (n,), generator=gen)
        keep[row, -n:] = 1
    return ids, keep


# Per family: prompt lengths of the padded batch (none a multiple of the block), generate settings.
FAMILIES = {
    "llada2": dict(
        lengths=(6, 35),
        settings=dict(
            max_new_tokens=LLADA2_GEN, strategy=LLaDA2Decoder(threshold=LLADA2_THRESHOLD, steps_per_block=4)
        ),
    ),
    "sdar": dict(
        lengths=(7, 2, 5),
        settings=dict(
            max_new_tokens=SDAR_GEN,
            temperature=0,  # SDAR's generation_config.json samples (temperature 0.6, top-k 20): greedy here
            strategy=SDARDecoder(confidence_threshold=SDAR_THRESHOLD, denoising_steps=4),
        ),
    ),
    "lladamoe": dict(
        lengths=(9, 4, 6),
        settings=dict(max_new_tokens=8, block_length=4, strategy=TopKConfidence()),
    ),
}


# ---------------------------------------------------------------------------------------------- the exact cache
class StepRecorder:
    """A `callback_on_step_end` that records what the strategy saw at each step (the logits of the current block,
    the largest logit of every position, the confidences and proposals), or, given the records of another run,
    compares each step with them on the fly (no run keeps the whole `[B, L, V]` logits of every step: on LLaDA2's
    vocabulary that is ~100 MB a step)."""

    def __init__(self, expected=None):
        self.records, self.expected, self.compared = [], expected, 0

    @staticmethod
    def _record(state):
        logits = state.logits
        block_logits = logits[:, state.block_start : state.block_end].clone()
        block_logits.masked_fill_(block_logits == float("-inf"), 0.0)  # the [MASK] column, -inf in both runs
        return dict(
            block=(state.block_start, state.block_end),
            block_logits=block_logits,
            # outside the current block: a finished block's last logits, zeros for a block not reached yet
            amax=logits.amax(-1),
            confidence=state.confidence.clone(),
            proposal=state.proposal.clone(),
            eligible=state.eligible.clone(),
        )

    def __call__(self, step):
        record = self._record(step.state)
        if self.expected is None:
            self.records.append(record)
            return
        assert self.compared < len(self.expected), "the cached run takes more steps"
        want = self.expected[self.compared]
        assert record["block"] == want["block"], self.compared
        for key in ("eligible", "proposal"):
            assert torch.equal(record[key], want[key]), (self.compared, key)
        for key in ("block_logits", "amax", "confidence"):
            gap = (record[key] - want[key]).abs_().max().item()  # (assert_close is slow on ~10M logits a step)
            assert gap <= TOL, f"step {self.compared}: {key} differs by {gap:.3g}"
        self.compared += 1


@pytest.mark.parametrize("family", ["llada2", "sdar"])
def test_cached_logits_equal_uncached_logits_at_every_step(request, family):
    model = request.getfixturevalue(family)
    spec = FAMILIES[family]
    ids, keep = _prompts(spec["lengths"], seed=1)
    kwargs = dict(attention_mask=keep, drop_finished_rows=False, return_dict_in_generate=True, **spec["settings"])
    plain_steps = StepRecorder()
    plain = model.generate(ids, callback_on_step_end=plain_steps, **kwargs)
    cached_steps = StepRecorder(expected=plain_steps.records)
    cached = model.generate(ids, use_cache=True, callback_on_step_end=cached_steps, **kwargs)
    assert cached_steps.compared == len(plain_steps.records) > 3
    assert len({r["block"] for r in plain_steps.records}) >= 3  # the prompt's tail block and two more
    assert torch.equal(plain.sequences, cached.sequences) and torch.equal(plain.nfe, cached.nfe)
    assert (cached.forward_positions < plain.forward_positions).all()  # the cache feeds fewer positions


# ---------------------------------------------------------------------------------------------- padded batches
@pytest.mark.parametrize("use_cache", [False, True])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_padded_batch_decodes_each_row_as_alone(request, family, use_cache):
    model = request.getfixturevalue(family)
    spec = FAMILIES[family]
    ids, keep = _prompts(spec["lengths"], seed=2)
    settings = dict(use_cache=use_cache, return_dict_in_generate=True, **spec["settings"])
    length = settings["max_new_tokens"]
    batch = model.generate(ids, attention_mask=keep, **settings)
    assert batch.sequences.shape == (len(spec["lengths"]), ids.shape[1] + length)
    for row in range(ids.shape[0]):
        alone = model.generate(ids[row : row + 1, keep[row].bool()], **settings)
        assert batch.sequences[row, -length:].tolist() == alone.sequences[0, -length:].tolist(), row
        assert int(batch.nfe[row]) == int(alone.nfe[0]), row


# ---------------------------------------------------------------------------------------------- reference loops
def _published_step(model, x, end, block_length, mask_id, family):
    """One forward as the published samplers make it: the canvas up to the block's end, the published block mask,
    positions 0..end-1; greedy choice with [MASK] excluded (hf_unmask never proposes it). `(tokens, probs)` of the
    current block."""
    if family == "llada2":  # LLaDA2's generate: tril over blocks, repeated, [1, 1, T, T], log() (0 / -inf)
        blocks = -(-end // block_length)
        keep = torch.tril(torch.ones(blocks, blocks)).repeat_interleave(block_length, 0)
        mask = keep.repeat_interleave(block_length, 1)[:end, :end][None, None].log()
    else:  # SDAR's generate.py: the same block-triangular matrix as [1, T, T] float 0 / 1
        mask = published_generate_mask(end, block_length)
    with torch.no_grad():
        out = model(x[:, :end], attention_mask=mask, position_ids=torch.arange(end)[None])
    logits = out.logits[0, -block_length:].float()
    logits[:, mask_id] = float("-inf")
    probs, tokens = torch.softmax(logits, -1).max(-1)
    return tokens, probs


def reference_llada2(model, ids, gen_length, steps, threshold):
    step = lambda x, end: _published_step(model, x, end, LLADA2_BLOCK, LLADA2_MASK, "llada2")  # noqa: E731
    return references.reference_llada2(
        step, ids, gen_length, LLADA2_BLOCK, steps, threshold, LLADA2_MASK, {LLADA2_EOS}
    )


def reference_llada21(model, ids, gen_length, threshold, edit_threshold, max_post):
    step = lambda x, end: _published_step(model, x, end, LLADA2_BLOCK, LLADA2_MASK, "llada2")  # noqa: E731
    return references.reference_llada21(
        step, ids, gen_length, LLADA2_BLOCK, threshold, edit_threshold, max_post, LLADA2_MASK, {LLADA2_EOS}
    )


def reference_sdar(model, ids, gen_length, steps, rule, threshold):
    step = lambda x, end: _published_step(model, x, end, SDAR_BLOCK, SDAR_MASK, "sdar")  # noqa: E731
    return references.reference_sdar(
        step, ids, gen_length, SDAR_BLOCK, steps, rule, threshold, SDAR_MASK, set(SDAR_STOP_IDS)
    )


# ---------------------------------------------------------------------------------------------- decoders
@pytest.mark.parametrize("prompt_length", [5, 37])
def test_llada2_decoder_matches_the_published_algorithm(llada2, prompt_length):
    ids, _ = _prompts((prompt_length,), seed=prompt_length)
    expected, nfe, branches = reference_llada2(llada2, ids, LLADA2_GEN, 4, LLADA2_THRESHOLD)
    assert branches["threshold"] > 0 and branches["top_k"] > 0, branches  # both rules of the decoder are taken
    strategy = LLaDA2Decoder(threshold=LLADA2_THRESHOLD, steps_per_block=4)
    for use_cache in (False, True):
        out = llada2.generate(
            ids, max_new_tokens=LLADA2_GEN, strategy=strategy, use_cache=use_cache, return_dict_in_generate=True
        )
        assert references.cut(out.sequences[0, prompt_length:].tolist(), {LLADA2_EOS}) == expected, use_cache
        assert int(out.nfe[0]) == nfe, use_cache


def test_llada21_decoder_with_editing_matches_the_published_algorithm(llada2):
    prompt_length, threshold, edit_threshold, max_post = 6, LLADA2_THRESHOLD, 2.5e-4, 2
    ids, _ = _prompts((prompt_length,), seed=3)
    expected, nfe, edits, branches = reference_llada21(llada2, ids, 32, threshold, edit_threshold, max_post)
    assert edits > 0 and branches["threshold"] > 0 and branches["top_k"] > 0, (edits, branches)
    strategy = LLaDA21Decoder(threshold=threshold, editing_threshold=edit_threshold, max_post_steps=max_post)
    for use_cache in (False, True):
        out = llada2.generate(
            ids, max_new_tokens=32, strategy=strategy, use_cache=use_cache, return_dict_in_generate=True,
            output_trajectory=True,
        )  # fmt: skip
        assert references.cut(out.sequences[0, prompt_length:].tolist(), {LLADA2_EOS}) == expected, use_cache
        assert int(out.nfe[0]) == nfe, use_cache
        assert int(out.trajectory.revised.sum()) == edits, use_cache


@pytest.mark.parametrize("rule", SDARDecoder.RULES)
def test_sdar_decoder_matches_the_published_algorithm(sdar, rule):
    prompt_length = 7
    ids, _ = _prompts((prompt_length,), seed=4)
    expected, branches = reference_sdar(sdar, ids, SDAR_GEN, 4, rule, SDAR_THRESHOLD)
    if rule == "low_confidence_dynamic":
        assert branches["threshold"] > 0 and branches["top_k"] > 0, branches
    strategy = SDARDecoder(remasking_strategy=rule, confidence_threshold=SDAR_THRESHOLD, denoising_steps=4)
    for use_cache in (False, True):
        out = sdar.generate(ids, max_new_tokens=SDAR_GEN, strategy=strategy, use_cache=use_cache, temperature=0)
        assert references.cut(out[0, prompt_length:].tolist(), set(SDAR_STOP_IDS)) == expected, use_cache


# ---------------------------------------------------------------------------------------------- loading
def _remote_modules():
    return {name for name in sys.modules if "transformers_modules" in name or name.startswith(("modeling_", "token"))}


def test_the_trainers_loader_with_trust_remote_code_loads_native_sdar_and_its_tokenizer(tmp_path_factory):
    """`AutoDiffusionLM(trust_remote_code=True)` is covered per family in test_*_model.py; `load_dllm` (the
    trainer's and the CLI's loader) loads model and tokenizer together, and runs none of the folder's code."""
    from hf_unmask.models import load_dllm

    before = _remote_modules()
    model, tokenizer = load_dllm(sdar_checkpoint(tmp_path_factory), dtype="float32", trust_remote_code=True)
    assert type(model) is SDARForCausalLM and type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert tokenizer.mask_token_id == SDAR_MASK and _remote_modules() == before


# ---------------------------------------------------------------------------------------------- policies
def llada2_tokenizer():
    """A minimal tokenizer for the tiny LLaDA2: the words of `toy_dataset`'s prompts at small ids, and LLaDA2's
    `<|endoftext|>` (EOS and pad, 156892) and `<|mask|>` (156895) at their published ids. Generated ids outside this
    vocabulary decode to nothing; rewards here read `completion_ids`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["sort", ":", *map(str, range(10))]
    vocab = {"[UNK]": 10, **{word: 100 + i for i, word in enumerate(words)}}
    vocab.update({"<|endoftext|>": LLADA2_EOS, "<|mask|>": LLADA2_MASK})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        mask_token="<|mask|>",
    )


def distinct_tokens(prompts, completions, completion_ids, **kwargs):
    """The number of distinct token ids of the completion (varies between rollouts of the random tiny model)."""
    return [float(len(set(ids))) for ids in completion_ids]


def test_one_grpo_step_on_a_tiny_llada2_changes_the_policy(llada2, tmp_path, monkeypatch):
    from hf_unmask.trainer import rollouts

    positions = []  # the position axis of every rollout's trajectory
    real = rollouts.diffusion_generate

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        positions.append(out.trajectory.masked.shape[-1])
        return out

    monkeypatch.setattr(rollouts, "diffusion_generate", recording)
    tokenizer = llada2_tokenizer()
    dllm_before = state_of(llada2)
    trainer = make_trainer(
        (llada2, tokenizer),
        tmp_path,
        reward=distinct_tokens,
        dataset=toy_dataset(4),
        gen_length=32,  # one trained block; the prompts' tails share the first one, so rollouts span two
        block_length=LLADA2_BLOCK,
        num_generations=4,
        per_device_train_batch_size=4,
        max_steps=1,
        num_iterations=1,
        policy_init_bias=1.0,  # unmask ~3/4 of a block per step: a few forwards per block
    )
    # the loss recomputes exactly the rollout's log-probabilities from the recorded states (ratio 1)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0]))
    rows, steps = batch["live"].nonzero(as_tuple=True)
    states = {k: batch[k][rows, steps] for k in ("confidence", "masked", "eligible", "time")}
    recomputed = trainer.policy.log_prob(states, batch["action"][rows, steps])
    torch.testing.assert_close(recomputed, batch["old_logps"][rows, steps], atol=1e-5, rtol=0)
    assert batch["advantages"].abs().sum() > 0  # the rewards differ within the group

    policy_before = state_of(trainer.policy)
    trainer.train()
    # the rollouts' canvas ran past L = 32 to the end of the block holding position P + 32
    assert positions and all(n > 32 for n in positions), positions
    log = trainer.state.log_history[0]
    assert log["reward_std"] > 0 and log["nfe/mean"] > 0, log
    changed = [k for k, v in policy_before.items() if not torch.equal(v, trainer.policy.state_dict()[k])]
    assert changed
    assert all(torch.equal(v, llada2.state_dict()[k]) for k, v in dllm_before.items())


@pytest.mark.parametrize("use_cache", [False, True])
def test_policy_log_probs_reproduce_on_llada2(llada2, use_cache):
    # init_bias 1: the policy unmasks most of a block per step (its default, -2, takes ~25 forwards per block)
    policy = ConfidencePolicy(mode="bernoulli", temperature=0.7, init_bias=1.0)
    ids, keep = _prompts((5, 9), seed=5)
    out = llada2.generate(
        ids, attention_mask=keep, max_new_tokens=32, strategy=policy, seed=0, use_cache=use_cache,
        output_trajectory=True, return_dict_in_generate=True,
    )  # fmt: skip
    trajectory = out.trajectory
    assert trajectory.log_prob is not None and trajectory.num_steps > 2
    assert trajectory.masked.shape[-1] > 32  # the canvas runs to the end of the second block
    torch.testing.assert_close(policy.log_prob(trajectory), trajectory.log_prob, atol=1e-5, rtol=0)
