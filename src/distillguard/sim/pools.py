"""Corpora as Arrow arrays, so rows are drawn with ``take`` instead of per-row Python.

:func:`build_pools` turns :class:`~distillguard.corpora.Corpora` into :class:`Pools`;
with no corpus at all, :func:`fallback_corpora` makes a procedural stand-in (and
the simulator says so loudly), so the package still runs on a bare machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from distillguard.corpora import Corpora

__all__ = ["Pools", "build_pools", "fallback_corpora"]


def _arr(xs: list[str]) -> pa.Array:
    return pa.array(xs if xs else [""], pa.string())


@dataclass
class Pools:
    """Every text pool the builders draw from, plus token/rate traces."""

    chat: pa.Array
    chat_resp: pa.Array
    code: pa.Array
    questions: pa.Array
    dlg_text: pa.Array  # flattened hh-rlhf human turns
    dlg_resp: pa.Array
    dlg_off: np.ndarray
    dlg_len: np.ndarray
    follow: pa.Array  # later human turns: real follow-ups
    follow_resp: pa.Array
    snippets: pa.Array  # pasted context (paragraphs of other texts)
    code_snips: pa.Array
    apps: list[str]
    app_inputs: pa.Array
    benchmarks: dict[str, pa.Array]
    seed_instr: pa.Array
    seed_input: pa.Array
    seed_out: pa.Array
    code_instr: pa.Array
    code_input: pa.Array
    code_resp: pa.Array
    role_instr: pa.Array
    role_resp: pa.Array
    tool_instr: pa.Array
    tool_input: pa.Array
    tool_resp: pa.Array
    tool_headers: list[str]
    gen_prompts: list[str]
    seed_lines: list[str]  # seed tasks formatted as Alpaca's few-shot listing
    azure_code: np.ndarray
    azure_conv: np.ndarray
    mooncake: np.ndarray
    client_rates: list[np.ndarray]
    volume_sigma: float
    sources: list[str]
    fallback: bool


def _paragraphs(texts: list[str], lo: int = 60, hi: int = 900) -> list[str]:
    out = []
    for t in texts:
        for p in re.split(r"\n\s*\n", t):
            p = p.strip()
            if lo <= len(p) <= hi:
                out.append(p)
    return out


def _code_blocks(texts: list[str]) -> list[str]:
    out = []
    for t in texts:
        for m in re.finditer(r"```[a-zA-Z0-9+#]*\n(.*?)```", t, re.S):
            block = m.group(1).strip()
            if 40 <= len(block) <= 3000:
                out.append(block)
    return out


def build_pools(c: Corpora, fallback: bool = False) -> Pools:
    """Arrow pools from parsed corpora (first human turn vs. follow-ups split, snippets cut)."""
    dlg_text: list[str] = []
    dlg_resp: list[str] = []
    off, ln = [], []
    follow: list[str] = []
    follow_resp: list[str] = []
    for humans, resp in zip(c.dialogues, c.dialogue_resp, strict=True):
        off.append(len(dlg_text))
        ln.append(len(humans))
        dlg_text += humans
        dlg_resp += resp[: len(humans)]
        follow += humans[1:]
        follow_resp += resp[1 : len(humans)]
    snippets = _paragraphs(c.chat_resp + [r for rs in c.dialogue_resp for r in rs] + c.chat)
    code_snips = _code_blocks(c.code) or [t for t in c.code if len(t) > 80]
    headers = []
    for inst, _, _ in c.tool_tasks:
        lines = inst.split("\n")
        if len(lines) > 2 and lines[0].startswith("toolformer"):
            headers.append("\n".join(lines[:-1]))
    headers = sorted(set(headers))
    seed_lines = [
        f"Instruction: {i}\nInput:\n{x if x.strip() else '<noinput>'}\nOutput:\n{o}"
        for i, x, o in c.seed_tasks
    ]
    if c.client_rates:
        tot = np.array([r.sum() for r in c.client_rates])
        sigma = float(np.std(np.log(tot[tot > 0])))
    else:
        sigma = 2.0
    return Pools(
        chat=_arr(c.chat), chat_resp=_arr(c.chat_resp), code=_arr(c.code or c.chat),
        questions=_arr(c.questions or c.chat),
        dlg_text=_arr(dlg_text or c.chat), dlg_resp=_arr(dlg_resp or [""] * max(1, len(c.chat))),
        dlg_off=np.asarray(off or [0], np.int64), dlg_len=np.asarray(ln or [1], np.int64),
        follow=_arr(follow or c.questions), follow_resp=_arr(follow_resp or [""] * max(1, len(c.questions))),
        snippets=_arr(snippets or c.chat), code_snips=_arr(code_snips or c.code),
        apps=[a for a, _ in c.apps] or c.chat[:50],
        app_inputs=_arr([x for _, xs in c.apps for x in xs if x.strip()] + snippets[:2000]),
        benchmarks={k: _arr(v) for k, v in c.benchmarks.items() if v} or {"fallback": _arr(c.chat)},
        seed_instr=_arr([t[0] for t in c.seed_tasks]), seed_input=_arr([t[1] for t in c.seed_tasks]),
        seed_out=_arr([t[2] for t in c.seed_tasks]),
        code_instr=_arr([t[0] for t in c.code_tasks]), code_input=_arr([t[1] for t in c.code_tasks]),
        code_resp=_arr([t[2] for t in c.code_tasks]),
        role_instr=_arr([t[0] for t in c.roleplay_tasks] or [t[0] for t in c.seed_tasks]),
        role_resp=_arr([t[2] for t in c.roleplay_tasks] or [t[2] for t in c.seed_tasks]),
        tool_instr=_arr([t[0].split("\n")[-1] for t in c.tool_tasks] or [t[0] for t in c.code_tasks]),
        tool_input=_arr([t[1] for t in c.tool_tasks] or [t[1] for t in c.code_tasks]),
        tool_resp=_arr([t[2] for t in c.tool_tasks] or [t[2] for t in c.code_tasks]),
        tool_headers=headers or ["tools: search(query), run(code)"],
        gen_prompts=c.gen_prompts or ["List of 20 tasks:"],
        seed_lines=seed_lines or [f"Instruction: {t}" for t in c.chat[:20]],
        azure_code=c.azure_code, azure_conv=c.azure_conv, mooncake=c.mooncake,
        client_rates=c.client_rates, volume_sigma=sigma, sources=list(c.sources), fallback=fallback,
    )


# --------------------------------------------------------------------------- fallback

_WORDS = ["data", "model", "system", "user", "file", "table", "query", "value", "list", "string", "number", "function", "error", "test", "server", "client", "image", "text", "page", "report", "plan", "budget", "team", "project", "week", "month", "city", "river", "history", "music", "movie", "book", "game", "recipe", "garden", "health", "sleep", "travel", "language", "market", "price", "risk", "policy", "contract", "email", "meeting", "letter", "summary", "essay", "poem", "story", "song", "chart", "graph", "network", "database", "cache", "index", "api", "service", "cloud", "python", "java", "rust", "sql", "loop", "class", "method", "variable", "array", "map", "tree", "graph", "sort", "search", "parse", "render", "deploy", "build"]
_VERBS = ("write", "explain", "summarize", "compare", "list", "describe", "fix", "translate", "plan",
          "design", "implement", "optimize", "rewrite", "classify", "suggest", "debug", "draft", "outline")
_ASK = ("how do I", "what is the best way to", "can you", "please", "help me", "why does my", "is it possible to")


def fallback_corpora(seed: int = 0) -> Corpora:
    """A procedural stand-in for the corpora: grammar-built prompts and lognormal traces.

    Only used when no corpus is found; its prompts are word salad by design, so
    no result obtained on them should be trusted (the simulator warns).
    """
    rng = np.random.default_rng([seed, 99])

    def sentence(k: int) -> str:
        ws = [_WORDS[i] for i in rng.integers(0, len(_WORDS), k)]
        return " ".join(ws)

    def prompt(long: bool) -> str:
        v = _VERBS[int(rng.integers(0, len(_VERBS)))]
        a = _ASK[int(rng.integers(0, len(_ASK)))]
        body = f"{a} {v} the {sentence(int(rng.integers(2, 6)))}?"
        if long:
            body += "\n\n" + ". ".join(sentence(int(rng.integers(5, 14))) for _ in range(int(rng.integers(2, 8))))
        return body

    c = Corpora(sources=[])
    c.chat = [prompt(rng.random() < 0.4) for _ in range(3000)]
    c.chat_resp = [sentence(int(rng.integers(20, 120))) for _ in range(3000)]
    c.code = [prompt(True) + "\n\n" + "def f(x):\n    return x" for _ in range(800)]
    c.questions = [sentence(int(rng.integers(4, 9))) for _ in range(3000)]
    c.dialogues = [[prompt(False) for _ in range(int(rng.integers(1, 5)))] for _ in range(800)]
    c.dialogue_resp = [[sentence(30) for _ in d] for d in c.dialogues]
    c.apps = [(f"{_VERBS[i % len(_VERBS)]} the following {_WORDS[i]}", [sentence(20)]) for i in range(40)]
    c.benchmarks = {"fallback-bench": c.questions[:500]}
    c.seed_tasks = [(prompt(False), "", sentence(40)) for _ in range(150)]
    c.gen_prompts = ["Come up with a set of 20 diverse task instructions.\n\nList of 20 tasks:"]
    c.code_tasks = [(prompt(False), sentence(10), "def f(x):\n    " + sentence(30)) for _ in range(2000)]
    c.roleplay_tasks = [(prompt(True), "", sentence(80)) for _ in range(500)]
    c.tool_tasks = [(f"toolformer: enabled\ntool: search(query)\n{prompt(False)}", sentence(5), sentence(10))
                    for _ in range(500)]
    n = 5000
    c.azure_conv = np.stack([rng.lognormal(6.9, 0.9, n), rng.lognormal(4.9, 0.8, n)], 1).astype(np.int64) + 1
    c.azure_code = np.stack([rng.lognormal(7.2, 1.1, n), rng.lognormal(2.7, 1.0, n)], 1).astype(np.int64) + 1
    c.mooncake = np.stack([rng.lognormal(8.8, 1.2, n), rng.lognormal(5.6, 0.7, n)], 1).astype(np.int64) + 1
    c.client_rates = [np.clip(rng.lognormal(-1, 1.0) * (1 + 0.5 * np.sin(np.arange(2016) * 2 * np.pi / 144))
                              * rng.lognormal(0, 0.5, 2016), 0, None) for _ in range(40)]
    return c
