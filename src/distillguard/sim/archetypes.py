"""What each archetype says: prompt, response, system prompt and tools, drawn from the pools.

Benign builders draw human-written prompts and vary them the way a population
does (popular short prompts repeat, long ones are pasted with context and rarely
repeat exactly); attack builders wrap the prompt sets really used to distil
models in per-campaign templates, paraphrases, elicitation or tool loops. All
builders are vectorised over rows (Arrow ``take`` and element-wise joins).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.sim.pools import Pools

__all__ = ["ANSWER_FORMATS", "FOLLOW_UPS", "Content", "Rows", "benign_chat", "build_content", "draw_script", "reword"]

STR = pa.string()


@dataclass
class Rows:
    """The rows one builder fills: per row its account, conversation and turn."""

    acct: np.ndarray  # global account index
    conv: np.ndarray  # conversation index (0..n_conv-1, local to the batch)
    turn: np.ndarray  # 0-based turn within the conversation
    conv_len: np.ndarray  # turns in each row's conversation
    ts: np.ndarray | None = None  # µs, when known (stealth warm-up needs it)

    def __len__(self) -> int:
        return len(self.acct)


@dataclass
class Content:
    """Builder output, aligned with :class:`Rows`."""

    prompt: pa.Array
    response: pa.Array
    system: pa.Array
    has_tools: np.ndarray
    kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))  # 0 chat, 1 code, 2 tool, 3 bench


def _nulls(n: int) -> pa.Array:
    return pa.nulls(n, STR)


def _take(a: pa.Array, idx: np.ndarray) -> pa.Array:
    return a.take(pa.array(idx, pa.int64()))


def _zipf(rng: np.random.Generator, size: int, n: int, a: float, perm: np.ndarray | None = None) -> np.ndarray:
    """Indices with a popularity skew (``a`` > 1: a head of popular items), via a fixed permutation."""
    idx = np.minimum((size * rng.random(n) ** a).astype(np.int64), size - 1)
    return perm[idx] if perm is not None else idx


def _join(parts: list[pa.Array], sep: str = "\n\n") -> pa.Array:
    """Element-wise join that skips nulls (so optional parts vanish cleanly)."""
    return pc.binary_join_element_wise(*parts, sep, null_handling="skip")


def _maybe(a: pa.Array, keep: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(keep), a, _nulls(len(a)))


def _nonempty(a: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(pc.utf8_length(a), 0), _nulls(len(a)), a)


class Ctx:
    """Per-run state the builders share: pools, fixed popularity permutations, sentence pool."""

    def __init__(self, pools: Pools, rng: np.random.Generator) -> None:
        self.p = pools
        self.perm = {name: rng.permutation(len(getattr(pools, name)))
                     for name in ("chat", "code", "questions", "follow", "snippets", "code_snips")}
        self.dlg_perm = rng.permutation(len(pools.dlg_off))
        sents: list[str] = []
        for t in pools.snippets.to_pylist()[:20000]:
            sents += [s.strip() for s in re.split(r"(?<=[.!?])\s+", t) if 25 <= len(s.strip()) <= 300]
        self.sentences = pa.array(sents or ["ok"], STR)
        self.tool_headers = pa.array(pools.tool_headers, STR)
        # One response pool per kind of request, shared by benign and attack rows: the served
        # model answers both, so response text (and whether it is logged) must not track the label.
        nonempty = [pc.filter(a, pc.greater(pc.utf8_length(a), 0))
                    for a in (pools.chat_resp, pools.dlg_resp, pools.seed_out, pools.role_resp)]
        self.resp_chat = pa.concat_arrays(nonempty)
        self.resp_code = pc.filter(pools.code_resp, pc.greater(pc.utf8_length(pools.code_resp), 0))
        self.resp_tool = pa.concat_arrays([pc.filter(pools.tool_resp, pc.greater(pc.utf8_length(pools.tool_resp), 0)),
                                           self.resp_code])

    def fill_responses(self, rng: np.random.Generator, resp: pa.Array, kind: np.ndarray) -> pa.Array:
        """Rows whose source corpus has no response get one from the shared pool of their kind."""
        n = len(resp)
        if resp.null_count == 0:
            return resp
        pools = (self.resp_chat, self.resp_code, self.resp_tool, self.resp_chat)
        k = np.clip(kind, 0, 3) if len(kind) == n else np.zeros(n, np.int64)
        fill = pc.case_when(pc.make_struct(*(pa.array(k == i) for i in range(3))),
                            *(_take(p, rng.integers(0, max(1, len(p)), n)) for p in pools))
        return pc.coalesce(resp, fill)


# --------------------------------------------------------------------------- benign


def vary(ctx: Ctx, rng: np.random.Generator, base: pa.Array, code: bool = False) -> pa.Array:
    """Vary prompts the way many people asking similar things do.

    A row is reused verbatim with probability ``0.55 e^{-L/60} + 0.01`` (L = length):
    a 20-character prompt four times in ten, a 300-character one about once in a
    hundred - popular short prompts repeat, long ones rarely. Other rows are
    rewritten: short ones are run together with another short question; longer
    ones get context pasted before or after (sentences and paragraphs of other
    texts, or code), are cut short, or lower-cased. Two random draws from pools of
    10^4-10^5 make exact repeats of rewritten rows vanishingly rare.
    """
    n = len(base)
    if n == 0:
        return base
    length = pc.utf8_length(base).to_numpy(zero_copy_only=False).astype(np.float64)
    fresh = rng.random(n) >= 0.55 * np.exp(-length / 60) + 0.01
    op = rng.integers(0, 4, n)
    snip_pool = ctx.p.code_snips if code else ctx.p.snippets
    snip = _take(snip_pool, rng.integers(0, len(snip_pool), n))
    sent = _take(ctx.sentences, rng.integers(0, len(ctx.sentences), n))
    sent2 = _maybe(_take(ctx.sentences, rng.integers(0, len(ctx.sentences), n)), rng.random(n) < 0.5)
    tail = _join([sent, sent2], " ")
    after = _join([base, snip, tail] if code else [base, tail])
    before = _join([snip, base, sent if code else _maybe(sent, rng.random(n) < 0.5)])
    cut = _join([pc.utf8_slice_codeunits(base, 0, 160), tail], " ")
    lower = _join([pc.utf8_lower(base), tail], " ")
    longer = pc.case_when(
        pc.make_struct(pa.array(op == 0), pa.array(op == 1), pa.array(op == 2)),
        after, before, cut, lower,
    )
    q = _take(ctx.p.questions, rng.integers(0, len(ctx.p.questions), n))
    f = _take(ctx.p.follow, rng.integers(0, len(ctx.p.follow), n))
    shorter = pc.case_when(
        pc.make_struct(pa.array(op == 0), pa.array(op == 1), pa.array(op == 2)),
        _join([base, q], " "), _join([q, base], "? "), _join([base, f], " "), _join([base, sent], " "),
    )
    varied = pc.if_else(pa.array(length < 64), shorter, longer)
    return pc.if_else(pa.array(fresh), varied, base)


def benign_chat(ctx: Ctx, rng: np.random.Generator, rows: Rows, mix: tuple[float, float, float, float] = (0.35, 0.3, 0.25, 0.1)) -> Content:
    """Casual chat: real hh-rlhf dialogues turn by turn, or one prompt then real follow-ups.

    ``mix`` = shares of conversations that are (dialogue, chat prompt, search question, coding).
    """
    p = ctx.p
    n = len(rows)
    n_conv = int(rows.conv.max()) + 1 if n else 0
    src = rng.choice(4, size=n_conv, p=np.asarray(mix) / sum(mix))[rows.conv]
    dlg = ctx.dlg_perm[_zipf(rng, len(p.dlg_off), n_conv, 1.6)][rows.conv]
    in_dlg = (src == 0) & (rows.turn < p.dlg_len[dlg])
    dlg_idx = np.where(in_dlg, p.dlg_off[dlg] + rows.turn, 0)
    chat_i = _zipf(rng, len(p.chat), n, 1.8, ctx.perm["chat"])
    q_i = _zipf(rng, len(p.questions), n, 1.5, ctx.perm["questions"])
    code_i = _zipf(rng, len(p.code), n, 1.6, ctx.perm["code"])
    fol_i = _zipf(rng, len(p.follow), n, 2.5, ctx.perm["follow"])
    first = rows.turn == 0
    which = np.where(in_dlg, 0, np.where(first, src, 4))  # 4: follow-up
    prompt = pc.case_when(
        pc.make_struct(*(pa.array(which == k) for k in range(4))),
        _take(p.dlg_text, dlg_idx), _take(p.chat, chat_i), _take(p.questions, q_i), _take(p.code, code_i),
        _take(p.follow, fol_i),
    )
    resp = pc.case_when(
        pc.make_struct(pa.array(which == 0), pa.array(which == 1), pa.array(which == 4)),
        _take(p.dlg_resp, dlg_idx), _take(p.chat_resp, chat_i), _take(p.follow_resp, fol_i), _nulls(n),
    )
    prompt = vary(ctx, rng, prompt, code=False)
    return Content(prompt, _nonempty(resp), _nulls(n), np.zeros(n, bool), np.where(which == 3, 1, 0).astype(np.int8))


def developer(ctx: Ctx, rng: np.random.Generator, rows: Rows, system: pa.Array) -> Content:
    """Coding questions with pasted code, then follow-ups; some use an app system prompt."""
    p = ctx.p
    n = len(rows)
    first = rows.turn == 0
    base = pc.if_else(pa.array(rng.random(n) < 0.75), _take(p.code, _zipf(rng, len(p.code), n, 1.5, ctx.perm["code"])),
                      _take(p.chat, _zipf(rng, len(p.chat), n, 1.8, ctx.perm["chat"])))
    follow = vary(ctx, rng, _join([_take(p.follow, _zipf(rng, len(p.follow), n, 2.5, ctx.perm["follow"])),
                                   _maybe(_take(p.code_snips, rng.integers(0, len(p.code_snips), n)), rng.random(n) < 0.5)]),
                  code=True)
    prompt = pc.if_else(pa.array(first), vary(ctx, rng, base, code=True), follow)
    return Content(prompt, _nulls(n), system, np.zeros(n, bool), np.ones(n, np.int8))


def agent_user(ctx: Ctx, rng: np.random.Generator, rows: Rows, system: pa.Array) -> Content:
    """Long agent sessions: a task, then tool results (command output, file contents) turn after turn."""
    p = ctx.p
    n = len(rows)
    first = rows.turn == 0
    task = vary(ctx, rng, _take(p.code, _zipf(rng, len(p.code), n, 1.4, ctx.perm["code"])), code=True)
    tool_out = pc.if_else(pa.array(rng.random(n) < 0.6),
                          _take(p.code_snips, rng.integers(0, len(p.code_snips), n)),
                          _take(p.snippets, rng.integers(0, len(p.snippets), n)))
    steer = vary(ctx, rng, _take(p.follow, _zipf(rng, len(p.follow), n, 2.5, ctx.perm["follow"])))
    later = pc.if_else(pa.array(rng.random(n) < 0.85), vary(ctx, rng, tool_out, code=True), steer)
    prompt = pc.if_else(pa.array(first), task, later)
    return Content(prompt, _nulls(n), system, np.ones(n, bool), np.full(n, 2, np.int8))


def enterprise(ctx: Ctx, rng: np.random.Generator, rows: Rows, app: np.ndarray) -> Content:
    """ONE template per app: its fixed instruction around changing content (documents, messages)."""
    p = ctx.p
    n = len(rows)
    apps = pa.array(p.apps, STR)
    instr = _take(apps, app[rows.acct] % len(p.apps))
    doc = pc.if_else(pa.array(rng.random(n) < 0.3), _take(p.app_inputs, rng.integers(0, len(p.app_inputs), n)),
                     _take(p.snippets, rng.integers(0, len(p.snippets), n)))
    content = _join([_take(ctx.sentences, rng.integers(0, len(ctx.sentences), n)), doc], " ")
    prompt = _join([instr, content])
    return Content(prompt, _nulls(n), instr, np.zeros(n, bool), np.zeros(n, np.int8))


ANSWER_FORMATS = (
    "Answer with only the letter of the correct option.",
    "You are a helpful assistant. Think briefly, then give your final answer on the last line as 'Answer: <answer>'.",
    "Respond with the final answer only, no explanation.",
    "Put your final answer within \\boxed{}.",
    "Answer the question. End your response with 'The answer is X.'",
    "Return a JSON object {\"answer\": ...} and nothing else.",
)
"""System prompts of evaluation harnesses: one fixed answer format per run."""


def eval_runner(ctx: Ctx, rng: np.random.Generator, rows: Rows, bench: np.ndarray, pos: np.ndarray,
                fmt: np.ndarray | None = None) -> Content:
    """A benchmark run through the API: items in order, verbatim, re-run for each configuration;
    with ``fmt`` (index into :data:`ANSWER_FORMATS` per account, -1 none) its harness's system prompt."""
    names = sorted(ctx.p.benchmarks)
    b = bench[rows.acct] % len(names)
    out = pa.nulls(len(rows), STR)
    for k in np.unique(b):
        m = b == k
        arr = ctx.p.benchmarks[names[int(k)]]
        vals = _take(arr, pos[m] % len(arr))
        idx = np.flatnonzero(m)
        out = _scatter(out, idx, vals)
    system = _nulls(len(rows))
    if fmt is not None and (fmt[rows.acct] >= 0).any():
        f = fmt[rows.acct]
        system = pc.if_else(pa.array(f >= 0), _take(pa.array(ANSWER_FORMATS, STR), np.maximum(f, 0)), system)
    return Content(out, _nulls(len(rows)), system, np.zeros(len(rows), bool), np.full(len(rows), 3, np.int8))


def _scatter(dst: pa.Array, idx: np.ndarray, vals: pa.Array) -> pa.Array:
    """``dst`` with rows ``idx`` replaced by ``vals`` (Arrow has no scatter; use a take over a concat)."""
    n = len(dst)
    src = np.arange(n, dtype=np.int64)
    src[idx] = n + np.arange(len(idx))
    return pa.concat_arrays([dst, vals.cast(dst.type)]).take(pa.array(src))


# --------------------------------------------------------------------------- attack

_HEADS = (
    "Below is an instruction that describes a task{inp}. Write a response that appropriately completes the request.\n\n### Instruction:",
    "You are an expert assistant. Complete the following task thoroughly.\n\nTask:",
    "Respond to the instruction below with a complete, high-quality answer.\n\nInstruction:",
    "### Task\n",
    "Solve the following problem. Give a complete solution.\n\n",
    "Please answer the following request in detail.\n\nRequest:",
)
_TAILS = ("\n\n### Response:", "", "\n\nAnswer:", "\n\nProvide the full answer.", "\n\nResponse:", "\n\nSolution:")
_ELICIT_A = ("Think step by step", "Reason through the problem carefully", "Work through this step-by-step",
             "Show all of your reasoning", "Explain your thinking in detail", "Lay out your full chain of reasoning",
             "Walk me through your thought process")
_ELICIT_B = ("before giving the final answer.", "and then state the answer.", "and put the final answer at the end.",
             "and justify each step.", "and double-check your work.", ".")
_ELICIT_C = ("", " Use numbered steps.", " Be exhaustive.", " Do not skip any intermediate step.",
             " Put the final answer in a code block.", " Consider edge cases explicitly.")
_RUBRIC_A = ("Grade the following response", "Score this answer", "Evaluate the response below",
             "Rate the following solution", "Act as a strict grader and assess this answer")
_RUBRIC_B = ("on correctness, completeness and clarity (1-10 each).", "against this rubric: accuracy, reasoning quality, style.",
             "from 1 to 10 and explain the score.", "and list every error you find, then give a score out of 10.",
             "using a 5-point scale for helpfulness and a 5-point scale for correctness.")


@dataclass
class CampaignStyle:
    """What one campaign's scripts look like; drawn per campaign so no constant is shared."""

    heads: list[str]
    tails: list[str]
    elicit: list[str]
    rubric: list[str]
    tool_header: int
    task_weights: np.ndarray  # over (seed, code, role, tool)
    gen_frac: float
    resold_frac: float
    warmup_days: float
    paraphrase_ops: np.ndarray
    vary_p: float  # share of prompts given extra context, so exact-repeat rates differ per campaign
    tasks: np.ndarray | None = None  # careful operators: the task list, rows of (source, index)
    script: list[str] = field(default_factory=list)  # careful operators: follow-up script, reworded
    foreign_p: float = 0.0  # share of reworded requests opened and closed in another language

    @staticmethod
    def draw(rng: np.random.Generator, archetype: str, targets: tuple[str, ...], params: dict[str, Any],
             n_headers: int) -> CampaignStyle:
        k = int(params.get("templates", rng.integers(1, 4)))
        hi = rng.choice(len(_HEADS), size=min(k, len(_HEADS)), replace=False)
        heads = [_HEADS[i].replace("{inp}", ", paired with an input that provides further context" if rng.random() < 0.5 else "")
                 for i in hi]
        tails = [_TAILS[int(rng.integers(0, len(_TAILS)))] for _ in heads]
        elicit = [f"{_ELICIT_A[int(rng.integers(0, len(_ELICIT_A)))]} {_ELICIT_B[int(rng.integers(0, len(_ELICIT_B)))]}"
                  f"{_ELICIT_C[int(rng.integers(0, len(_ELICIT_C)))]}".replace(" .", ".")
                  for _ in range(int(rng.integers(1, 4)))]
        rubric = [f"{_RUBRIC_A[int(rng.integers(0, len(_RUBRIC_A)))]} {_RUBRIC_B[int(rng.integers(0, len(_RUBRIC_B)))]}"
                  for _ in range(int(rng.integers(1, 3)))]
        w = np.array([0.3, 0.1, 0.1, 0.05])
        for t in targets:
            if t == "coding":
                w[1] += 1.2
            elif t in ("agentic", "tool_use", "long_horizon"):
                w[3] += 0.8
                w[1] += 0.4
            elif t == "reasoning":
                w[0] += 0.6
                w[1] += 0.3
            elif t == "roleplay":
                w[2] += 1.0
            else:
                w[0] += 0.5
        w = w * rng.uniform(0.7, 1.3, 4)
        return CampaignStyle(
            heads=heads, tails=tails, elicit=elicit, rubric=rubric,
            tool_header=int(rng.integers(0, max(1, n_headers))),
            task_weights=w / w.sum(),
            gen_frac=float(params.get("generation_prompts", rng.uniform(0.0, 0.25) if archetype in ("naive_scraper", "hydra") else 0.0)),
            resold_frac=float(params.get("resold_fraction", rng.uniform(0.15, 0.45) if archetype == "hydra" else 0.0)),
            warmup_days=float(params.get("warmup_days", rng.uniform(3, 10) if archetype == "stealth" else 0.0)),
            paraphrase_ops=rng.dirichlet(np.ones(5)),
            vary_p=float(params.get("vary", {"naive_scraper": rng.uniform(0.0, 0.1), "hydra": rng.uniform(0.2, 0.7),
                                             "stealth": rng.uniform(0.85, 1.0)}.get(archetype, rng.uniform(0.3, 0.9)))),
        )


def _tasks(ctx: Ctx, rng: np.random.Generator, n: int, w: np.ndarray) -> tuple[pa.Array, pa.Array, pa.Array, np.ndarray]:
    """(instruction, input or null, response) of ``n`` tasks drawn from the distillation sets."""
    p = ctx.p
    src = rng.choice(4, size=n, p=w)
    si = rng.integers(0, len(p.seed_instr), n)
    ci = rng.integers(0, len(p.code_instr), n)
    ri = rng.integers(0, len(p.role_instr), n)
    ti = rng.integers(0, len(p.tool_instr), n)
    conds = pc.make_struct(*(pa.array(src == k) for k in range(3)))
    instr = pc.case_when(conds, _take(p.seed_instr, si), _take(p.code_instr, ci), _take(p.role_instr, ri), _take(p.tool_instr, ti))
    inp = pc.case_when(conds, _take(p.seed_input, si), _take(p.code_input, ci), _nulls(n), _take(p.tool_input, ti))
    resp = pc.case_when(conds, _take(p.seed_out, si), _take(p.code_resp, ci), _take(p.role_resp, ri), _take(p.tool_resp, ti))
    return instr, _nonempty(pc.if_else(pc.equal(inp, "<noinput>"), "", inp)), resp, src


def _gen_prompts(ctx: Ctx, rng: np.random.Generator, n: int) -> pa.Array:
    """The Self-Instruct/Alpaca harvesting prompt: prompt.txt plus three numbered seed tasks."""
    p = ctx.p
    gp = pa.array(p.gen_prompts, STR)
    seeds = pa.array(p.seed_lines, STR)
    parts = [_take(gp, rng.integers(0, len(gp), n))]
    for k in range(3):
        parts.append(pc.binary_join_element_wise(f"###\n{k + 1}. ", _take(seeds, rng.integers(0, len(seeds), n)), ""))
    parts.append(pa.array(["###\n4. Instruction:"] * n, STR))
    return _join(parts, "\n")


def templated(ctx: Ctx, rng: np.random.Generator, rows: Rows, style: CampaignStyle) -> Content:
    """Naive scrapers and hydra traffic: fixed per-campaign templates around harvested tasks."""
    n = len(rows)
    instr, inp, resp, src = _tasks(ctx, rng, n, style.task_weights)
    t = rng.integers(0, len(style.heads), n)
    heads = _take(pa.array(style.heads, STR), t)
    tails = _take(pa.array(style.tails, STR), t)
    body = pc.binary_join_element_wise(_join([heads, instr, inp], "\n"), tails, "")
    gen = rng.random(n) < style.gen_frac
    if gen.any():
        body = pc.if_else(pa.array(gen), _gen_prompts(ctx, rng, n), body)
        resp = pc.if_else(pa.array(gen), _nulls(n), resp)
    return Content(body, _nonempty(resp), _nulls(n), np.zeros(n, bool), np.where(src == 1, 1, 0).astype(np.int8))


def paraphrased(ctx: Ctx, rng: np.random.Generator, rows: Rows, style: CampaignStyle) -> Content:
    """Stealth: tasks from a generated list, each lightly reworded so no template repeats."""
    n = len(rows)
    instr, inp, resp, src = _tasks(ctx, rng, n, style.task_weights)
    op = rng.choice(5, size=n, p=style.paraphrase_ops)
    sent = _take(ctx.sentences, rng.integers(0, len(ctx.sentences), n))
    fol = _take(ctx.p.follow, rng.integers(0, len(ctx.p.follow), n))
    a = _join([instr, inp])
    b = _join([inp, instr])
    c = _join([pc.utf8_lower(instr), inp], "\n")
    d = _join([sent, instr, inp])
    e = _join([instr, inp, fol], " ")
    prompt = pc.case_when(pc.make_struct(*(pa.array(op == k) for k in range(4))), a, b, c, d, e)
    return Content(prompt, _nonempty(resp), _nulls(n), np.zeros(n, bool), np.where(src == 1, 1, 0).astype(np.int8))


# A careful operator's rewording: many openings and closings, synonym swaps, reordered
# clauses, a few fixed translations, and a short script of follow-up turns.
_OPEN = (
    "", "", "", "Hi!", "Hey,", "Hello, quick question.", "Could you help me with something?", "I need some help with this.",
    "Can you help me out?", "Quick one:", "I'm stuck on this one.", "Here's what I'm trying to do:", "Question for you:",
    "I was wondering if you could help.", "Help me with this please:", "So,", "Okay, next thing:",
    "I have a task for a project.", "My manager asked me to do this:", "For a class I'm taking:",
    "Working on something, could use a hand.", "Not sure how to approach this:", "Could you take a look at this?",
    "Would you mind helping with the following?", "Need a hand here.", "I'd appreciate your help with this.",
    "Let me ask you something.", "Here's one I can't figure out:", "Trying to get this done today:", "Hoping you can help:",
    "Got a question.", "Alright,", "Please help:", "This is for work:", "A friend asked me this:", "Any idea how to do this?",
    "Another one:", "Next:", "ok so", "hey there",
)
_CLOSE = (
    "", "", "", "Thanks!", "Thank you.", "Thanks in advance.", "Appreciate it!", "Keep it concise please.",
    "A short answer is fine.", "Please be detailed.", "Explain like I'm new to this.", "Thanks a lot.", "cheers", "ty",
    "Much appreciated.", "Let me know if anything is unclear.", "No rush.", "Hope that makes sense.", "thx",
    "Be as thorough as you can.", "Bullet points are fine.",
)
_FOREIGN = (  # (opening, closing): fixed translations
    ("¿Me puedes ayudar con esto?", "Gracias."), ("Tu peux m'aider avec ça ?", "Merci !"),
    ("Kannst du mir dabei helfen?", "Danke."), ("Pode me ajudar com isso?", "Obrigado!"),
    ("Puoi aiutarmi con questo?", "Grazie."), ("你能帮我看看这个吗？", "谢谢！"), ("これを手伝ってもらえますか？", "よろしくお願いします。"),
    ("이것 좀 도와줄 수 있어?", "고마워!"), ("Можешь помочь с этим?", "Спасибо."), ("Bana bu konuda yardım eder misin?", "Teşekkürler."),
)
_SYNONYMS = (
    ("Write", ("Compose", "Draft", "Put together")), ("write", ("compose", "draft", "put together")),
    ("Generate", ("Produce", "Come up with", "Create")), ("generate", ("produce", "come up with", "create")),
    ("Create", ("Make", "Build", "Design")), ("create", ("make", "build", "design")),
    ("Explain", ("Describe", "Clarify", "Tell me")), ("explain", ("describe", "clarify", "walk me through")),
    ("Describe", ("Explain", "Outline", "Characterize")), ("List", ("Name", "Enumerate", "Give me")),
    ("Give", ("Provide", "Offer", "Share")), ("give", ("provide", "offer", "share")), ("program", ("script", "piece of code")),
    ("function", ("method", "routine")), ("following", ("below", "next")), ("short", ("brief", "concise")),
    ("example", ("instance", "sample")), ("Find", ("Determine", "Identify", "Work out")),
    ("find", ("determine", "identify", "work out")), ("sentence", ("phrase", "line")), ("improve", ("enhance", "refine")),
    ("simple", ("basic", "straightforward")), ("different", ("various", "distinct")), ("important", ("key", "significant")),
    ("use", ("utilize", "employ")), ("Show", ("Demonstrate", "Illustrate")), ("code", ("implementation", "snippet")),
    ("text", ("passage",)), ("Summarize", ("Condense", "Sum up", "Recap")), ("help", ("assist",)), ("best", ("ideal", "optimal")),
    ("article", ("piece", "post")), ("describe", ("explain", "outline")), ("Rewrite", ("Rephrase", "Reword")),
    ("given", ("provided", "supplied")), ("Identify", ("Find", "Spot")), ("Suggest", ("Recommend", "Propose")),
)
_INPUT_FIRST = ("Here's the input:", "Context:", "Given this:", "Using the text below,", "Input:", "Take this:")
_ASK_FORMS = ("Can you ", "Could you ", "Would you ", "Please ", "I'd like you to ", "I need you to ")  # 3 questions
_IMPERATIVE = (r"^(?:Write|Compose|Draft|Create|Make|Build|Design|Generate|Produce|Explain|Describe|Outline|List|Name|Give|"
               r"Provide|Find|Determine|Identify|Implement|Summarize|Condense|Rewrite|Rephrase|Translate|Suggest|Recommend|"
               r"Calculate|Classify|Convert|Compare|Develop|Construct|Edit|Analyze|Analyse|Show|Fix|Debug|Edit|Modify|"
               r"Come up|Put together|Tell me|Sum up|Recap|Demonstrate|Illustrate|Enumerate|Propose|Offer|Share)\b")
FOLLOW_UPS = (
    "Now explain each step.", "Rewrite it in Rust.", "Can you make it shorter?", "Add comments to the code.",
    "Now write unit tests for it.", "What are the edge cases?", "Give me a more efficient version.", "Explain why this works.",
    "Rewrite it in TypeScript.", "Now do the same in Go.", "Summarize your answer in three bullet points.",
    "What would an expert change here?", "Make it more formal.", "Give two alternative approaches.",
    "What's the time complexity?", "Now explain it to a beginner.", "Double-check your answer and fix any mistakes.",
    "Expand on the second point.", "Give a concrete example.", "Rewrite it in Python.", "What are the trade-offs?",
    "Turn this into a step-by-step guide.",
)
"""Follow-up turns an operator's script may send (each campaign picks a few and rewords them lightly)."""
_FOLLOW_PRE = ("", "", "Thanks. ", "Great, ", "OK. ", "Nice. ", "Cool, ", "Perfect. ", "Hmm, ", "Good. ", "ok ")
_FOLLOW_POST = ("", "", " Please.", " Thanks!", " thx")


def draw_script(rng: np.random.Generator, k: int) -> list[str]:
    """A campaign's follow-up script: ``k`` of :data:`FOLLOW_UPS`, in the order it sends them."""
    return [FOLLOW_UPS[i] for i in rng.choice(len(FOLLOW_UPS), size=min(k, len(FOLLOW_UPS)), replace=False)]


def _reword_follow(rng: np.random.Generator, items: pa.Array) -> pa.Array:
    """Light rewording of scripted follow-ups: a lead-in, a sign-off, sometimes lower case or no full stop."""
    n = len(items)
    pre = rng.integers(0, len(_FOLLOW_PRE), n)
    lead = _take(pa.array(_FOLLOW_PRE, STR), pre)
    lower_first = np.array([_FOLLOW_PRE[i].endswith(", ") or _FOLLOW_PRE[i] == "ok " for i in pre])
    body = pc.if_else(pa.array(lower_first | (rng.random(n) < 0.15)), _lower_first(items), items)
    body = pc.if_else(pa.array(rng.random(n) < 0.25), pc.replace_substring_regex(body, r"[.?]$", ""), body)
    post = _take(pa.array(_FOLLOW_POST, STR), rng.integers(0, len(_FOLLOW_POST), n))
    return pc.binary_join_element_wise(lead, body, post, "")


def _task_text(ctx: Ctx, src: np.ndarray, idx: np.ndarray) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(instruction, input or null, response) of given tasks (source 0 seed, 1 code, 2 role, 3 tool)."""
    p = ctx.p
    n = len(src)
    conds = pc.make_struct(*(pa.array(src == k) for k in range(3)))
    si, ci = idx % len(p.seed_instr), idx % len(p.code_instr)
    ri, ti = idx % len(p.role_instr), idx % len(p.tool_instr)
    instr = pc.case_when(conds, _take(p.seed_instr, si), _take(p.code_instr, ci), _take(p.role_instr, ri), _take(p.tool_instr, ti))
    inp = pc.case_when(conds, _take(p.seed_input, si), _take(p.code_input, ci), _nulls(n), _take(p.tool_input, ti))
    resp = pc.case_when(conds, _take(p.seed_out, si), _take(p.code_resp, ci), _take(p.role_resp, ri), _take(p.tool_resp, ti))
    return instr, _nonempty(pc.if_else(pc.equal(inp, "<noinput>"), "", inp)), resp


def reword(rng: np.random.Generator, instr: pa.Array, inp: pa.Array, foreign_p: float = 0.0) -> pa.Array:
    """One task reworded per request: synonym swaps, reordered clauses and sentences, many
    openings and closings, some in another language; exact repeats become rare while the
    task stays recognisable."""
    n = len(instr)
    text = instr
    for word, alts in _SYNONYMS:
        pick = rng.integers(0, len(alts) + 1, n)  # len(alts): keep the word
        for j, alt in enumerate(alts):
            m = pick == j
            if m.any():
                text = pc.if_else(pa.array(m), pc.replace_substring_regex(text, rf"\b{word}\b", alt, max_replacements=1), text)
    form = rng.choice(4, n, p=[0.45, 0.2, 0.25, 0.1])
    swapped = pc.replace_substring_regex(text, r"^([^.!?\n]{12,}[.!?])\s+([^.!?\n]{12,}[.!?])\s*$", r"\2 \1")
    # an imperative becomes a question or a polite request ("Write ..." -> "Could you write ...?")
    ask = rng.integers(0, len(_ASK_FORMS), n)
    lead = _take(pa.array(_ASK_FORMS, STR), ask)
    body = pc.if_else(pa.array(ask < 3), pc.replace_substring_regex(text, r"\.\s*$", "?"), text)
    asked = pc.binary_join_element_wise(lead, _lower_first(body), "")
    asked = pc.if_else(pc.match_substring_regex(text, _IMPERATIVE), asked, text)
    lowered = pc.replace_substring_regex(pc.utf8_lower(text), r"[.]$", "")
    text = pc.case_when(pc.make_struct(*(pa.array(form == k) for k in (1, 2, 3))), swapped, asked, lowered, text)
    # the input before or after the instruction, with a lead-in when before
    before = rng.random(n) < 0.3
    ctx_lead = _take(pa.array(_INPUT_FIRST, STR), rng.integers(0, len(_INPUT_FIRST), n))
    body = pc.if_else(pa.array(before), _join([_join([ctx_lead, inp], "\n"), text]), _join([text, inp]))
    body = pc.fill_null(body, text)
    opening = _take(pa.array(_OPEN, STR), rng.integers(0, len(_OPEN), n))
    closing = _take(pa.array(_CLOSE, STR), rng.integers(0, len(_CLOSE), n))
    foreign = rng.random(n) < foreign_p
    if foreign.any():
        lang = rng.integers(0, len(_FOREIGN), n)
        opening = pc.if_else(pa.array(foreign), _take(pa.array([f[0] for f in _FOREIGN], STR), lang), opening)
        closing = pc.if_else(pa.array(foreign), _take(pa.array([f[1] for f in _FOREIGN], STR), lang), closing)
    sep = _take(pa.array(["\n\n", " ", "\n"], STR), rng.integers(0, 3, n))
    out = pc.binary_join_element_wise(_nonempty(opening), body, sep, null_handling="skip")
    return pc.binary_join_element_wise(out, _nonempty(closing), sep, null_handling="skip")


def _lower_first(text: pa.Array) -> pa.Array:
    """Lower-case each text's first character ('Write a poem' -> 'write a poem')."""
    return pc.binary_join_element_wise(pc.utf8_lower(pc.utf8_slice_codeunits(text, 0, 1)),
                                       pc.utf8_slice_codeunits(text, 1), "")


def scripted(ctx: Ctx, rng: np.random.Generator, rows: Rows, style: CampaignStyle) -> Content:
    """Careful operators: a task list reworded per request, then follow-ups from the operator's script.

    Each conversation opens with one task of the campaign's list (so a task comes back,
    reworded, across accounts); later turns are the script's follow-ups, mostly in order.
    """
    n = len(rows)
    n_conv = int(rows.conv.max()) + 1 if n else 0
    tasks = style.tasks if style.tasks is not None and len(style.tasks) else np.zeros((1, 2), np.int64)
    pick = rng.integers(0, len(tasks), n_conv)[rows.conv]
    src, idx = tasks[pick, 0], tasks[pick, 1]
    instr, inp, resp = _task_text(ctx, src, idx)
    first = reword(rng, instr, inp, style.foreign_p)
    script = style.script or list(FOLLOW_UPS[:4])
    start = rng.integers(0, len(script), n_conv)[rows.conv]
    step = np.where(rng.random(n) < 0.7, rows.turn - 1 + start, rng.integers(0, len(script), n)) % len(script)
    later = _reword_follow(rng, _take(pa.array(script, STR), step))
    is_first = pa.array(rows.turn == 0)
    prompt = pc.if_else(is_first, first, later)
    resp = pc.if_else(is_first, resp, _nulls(n))
    return Content(prompt, _nonempty(resp), _nulls(n), np.zeros(n, bool), np.where(src == 1, 1, 0).astype(np.int8))


def reasoning(ctx: Ctx, rng: np.random.Generator, rows: Rows, style: CampaignStyle) -> Content:
    """Step-by-step elicitation on tasks; second turns ask to grade an answer against a rubric."""
    n = len(rows)
    instr, inp, resp, src = _tasks(ctx, rng, n, style.task_weights)
    el = _take(pa.array(style.elicit, STR), rng.integers(0, len(style.elicit), n))
    ask = _join([instr, inp, el])
    rub = _take(pa.array(style.rubric, STR), rng.integers(0, len(style.rubric), n))
    grade = _join([rub, pc.binary_join_element_wise("Task: ", instr, ""),
                   pc.binary_join_element_wise("Answer: ", pc.fill_null(resp, ""), "")])
    prompt = pc.if_else(pa.array(rows.turn == 0), ask, grade)
    return Content(prompt, _nonempty(resp), _nulls(n), np.zeros(n, bool), np.where(src == 1, 1, 0).astype(np.int8))


def agentic(ctx: Ctx, rng: np.random.Generator, rows: Rows, style: CampaignStyle) -> Content:
    """Tool-use trajectories on software tasks: a task, then tool results fed back turn after turn."""
    p = ctx.p
    n = len(rows)
    instr, inp, resp, _ = _tasks(ctx, rng, n, style.task_weights)
    task = _join([instr, inp])
    tool_out = pc.if_else(pa.array(rng.random(n) < 0.5), _take(p.code_resp, rng.integers(0, len(p.code_resp), n)),
                          _take(p.tool_resp, rng.integers(0, len(p.tool_resp), n)))
    prompt = pc.if_else(pa.array(rows.turn == 0), task, _nonempty(tool_out))
    prompt = pc.fill_null(prompt, task)
    header = ctx.tool_headers[style.tool_header % len(ctx.tool_headers)].as_py()
    system = pa.array([header] * n, STR)
    return Content(prompt, _nonempty(resp), system, np.ones(n, bool), np.full(n, 2, np.int8))


Builder = Callable[[Ctx, np.random.Generator, Rows, CampaignStyle], Content]
ATTACK_BUILDERS: dict[str, Builder] = {
    "naive_scraper": templated,
    "hydra": templated,
    "stealth": paraphrased,
    "reasoning_harvester": reasoning,
    "agentic_harvester": agentic,
    "careful": scripted,
    "disposable": templated,
}


def build_content(ctx: Ctx, rng: np.random.Generator, rows: Rows, archetype: str, style: CampaignStyle,
                  warm: np.ndarray | None = None) -> Content:
    """Attack content, with hydra's resold legitimate share and stealth warm-up (``warm`` rows)
    drawn as benign chat."""
    c = ATTACK_BUILDERS[archetype](ctx, rng, rows, style)
    n = len(rows)
    if style.vary_p > 0:
        extra = _take(ctx.sentences, rng.integers(0, len(ctx.sentences), n))
        before = rng.random(n) < 0.5
        varied = pc.if_else(pa.array(before), _join([extra, c.prompt]), _join([c.prompt, extra]))
        c.prompt = pc.if_else(pa.array(rng.random(n) < style.vary_p), varied, c.prompt)
    benign_rows = np.zeros(n, bool) if warm is None else warm.copy()
    if archetype == "hydra" and style.resold_frac > 0:
        conv_benign = rng.random(int(rows.conv.max()) + 1) < style.resold_frac
        benign_rows |= conv_benign[rows.conv]
    if benign_rows.any():
        b = benign_chat(ctx, rng, rows)
        m = pa.array(benign_rows)
        c = Content(pc.if_else(m, b.prompt, c.prompt), pc.if_else(m, b.response, c.response),
                    pc.if_else(m, b.system, c.system), np.where(benign_rows, b.has_tools, c.has_tools),
                    np.where(benign_rows, b.kind, c.kind).astype(np.int8))
    return c
