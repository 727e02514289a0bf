"""The end-to-end proof: tiny teacher, watermarked and clean distillation, suspect-model test.

Why in the package: the benchmark script (``benchmarks/watermark_radioactivity.py``)
and the test of the loop at test size run the same code, only the sizes differ. Every
number in the result is measured in this run; nothing is carried over.

Steps: train a tokenizer and a teacher on corpus pairs; sample a distillation set from
it with and without the green-list watermark; measure text detection (TPR at 25–400
scored tokens, FPR and p-value calibration on clean corpus text, robustness to token
substitution), quality (perplexity under the teacher as unwatermarked reference, by
delta) and speed; train a student on each set; run the suspect-model test on each.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from distillguard.watermark import tinylm
from distillguard.watermark._deps import require
from distillguard.watermark.detect import TextDetector, first_unique, randomized_p, scored_pairs
from distillguard.watermark.greenlist import GreenList, GreenListLogitsProcessor
from distillguard.watermark.keys import KeyStore, derive
from distillguard.watermark.lexical import LexicalWatermark
from distillguard.watermark.perturb import cap_length
from distillguard.watermark.suspect import suspect_test

LENGTHS = (25, 50, 100, 200, 400)
# Kirchenbauer et al. 2023, multinomial sampling, gamma 0.25, delta 2, at 0.1 % FPR
PUBLISHED_TPR_AT_0_1PCT_FPR = {"50": "0.66-0.79", "100": 0.94, "200": 1.0}
PUBLISHED_TPR_AFTER_PARAPHRASE_200 = 0.60


@dataclass(frozen=True)
class Size:
    """How big each part of the run is; ``small`` fits 10 minutes on 2 cores."""

    name: str
    vocab: int
    teacher: tinylm.LMConfig
    student: tinylm.LMConfig
    teacher_budget_s: float | None  # None: train all steps (deterministic, for the test)
    student_budget_s: float | None
    n_distill: int
    distill_tokens: int
    n_suspect_queries: int
    suspect_tokens: int
    n_null_keys: int
    n_quality: int
    deltas: tuple[float, ...]
    mixes: tuple[float, ...] = ()
    fpr_keys: int = 1
    max_clean_chars: int = 10**9


SIZES: dict[str, Size] = {
    "test": Size(
        "test", 512, tinylm.LMConfig(512, 96, 2, 64, 2, steps=300, batch=16, lr=3e-3),
        tinylm.LMConfig(512, 96, 2, 64, 2, steps=400, batch=16, lr=3e-3), None, None, 400, 48, 400, 32, 20, 16,
        (1.0, 2.0), max_clean_chars=400_000,
    ),
    "small": Size(
        "small", 1024, tinylm.LMConfig(1024, 128, 3, 128, 4, steps=700, batch=24, lr=3e-3),
        tinylm.LMConfig(1024, 128, 2, 128, 4, steps=500, batch=24, lr=3e-3), 150, 70, 1024, 96, 1000, 64, 24, 64,
        (0.5, 1.0, 1.5, 2.0, 4.0), fpr_keys=4,
    ),
    "full": Size(
        "full", 2048, tinylm.LMConfig(2048, 256, 4, 192, 4, steps=4000, batch=32, lr=2e-3),
        tinylm.LMConfig(2048, 256, 3, 192, 4, steps=2500, batch=32, lr=2e-3), 3000, 900, 4096, 128, 1000, 96, 32,
        256, (0.5, 1.0, 1.5, 2.0, 3.0, 4.0), mixes=(0.1, 0.5), fpr_keys=10,
    ),
}


@dataclass
class Params:
    """Watermark parameters of the run; delta 1.0 is the processors' default (perplexity +7 % on the small run)."""

    gamma: float = 0.25
    delta: float = 1.0
    context_width: int = 1
    alpha: float = 1e-4
    target_p: float = 1e-6
    seed: int = 0
    device: str = "cpu"
    threads: int = 1  # tiny models on a shared 2-core box: a second thread mostly waits at barriers


def _tpr_curve(streams: Sequence[Sequence[Sequence[int]]], green: GreenList, alpha: float) -> dict[str, Any]:
    """TPR (and n) at each length: a sample is consecutive responses up to N unique scored pairs."""
    out: dict[str, Any] = {}
    pairs = [[scored_pairs(ids, green) for ids in s] for s in streams]
    for n in LENGTHS:
        hits, total = 0, 0
        for doc in pairs:
            fp_acc: list[np.ndarray] = []
            fl_acc: list[np.ndarray] = []
            for fp, fl in doc:
                fp_acc.append(fp)
                fl_acc.append(fl)
                r = first_unique(np.concatenate(fp_acc), np.concatenate(fl_acc), n)
                if r is not None:
                    total += 1
                    g, _ = r
                    hits += int(stats.binom.sf(g - 1, n, green.gamma) < alpha)
                    fp_acc, fl_acc = [], []
        out[str(n)] = {"tpr": hits / total if total else None, "samples": total}
    return out


def _chunks(seqs: Sequence[Sequence[int]], n_tokens: int) -> list[list[int]]:
    """Split each sequence into consecutive chunks of ``n_tokens`` (+ context)."""
    out = []
    for s in seqs:
        for i in range(0, len(s) - n_tokens, n_tokens):
            out.append(list(s[i : i + n_tokens + 1]))
    return out


def _null_pvalues(docs: Sequence[Sequence[int]], green: GreenList, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Exact and randomised p-values of clean docs at ``n`` unique scored tokens."""
    exact, rand = [], []
    for d in docs:
        fp, fl = scored_pairs(d, green)
        r = first_unique(fp, fl, n)
        if r is None:
            continue
        g, _ = r
        exact.append(float(stats.binom.sf(g - 1, n, green.gamma)))
        rand.append(randomized_p(g, n, green.gamma, float(rng.random())))
    return np.array(exact), np.array(rand)


def _substitute(ids: Sequence[int], frac: float, vocab: int, rng: random.Random) -> list[int]:
    return [rng.randrange(2, vocab) if rng.random() < frac else t for t in ids]


def run(size: str | Size = "small", params: Params | None = None, data_dir: Path | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole proof at ``size`` (a name or a :class:`Size`); returns the benchmark JSON."""
    torch = require("torch")
    p = params or Params()
    sz = SIZES[size] if isinstance(size, str) else size
    size = sz.name
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"[{time.perf_counter() - t_start:7.1f}s] {name}: {timings[name]} s")

    torch.set_num_threads(p.threads)
    rng = random.Random(p.seed)
    np_rng = np.random.default_rng(p.seed)
    torch.manual_seed(p.seed)

    # ---------------------------------------------------------------- data, tokenizer, teacher
    t0 = time.perf_counter()
    pairs = tinylm.corpus_pairs(data_dir)
    if len(pairs) < 200:
        raise RuntimeError(f"only {len(pairs)} corpus pairs found; the proof needs the corpora in ../shared/datasets")
    rng.shuffle(pairs)
    n_hold = sz.n_distill + sz.n_suspect_queries + sz.n_quality
    held, pretrain = pairs[:n_hold], pairs[n_hold:]
    distill_prompts = [q for q, _ in held[: sz.n_distill]]
    suspect_prompts = [q for q, _ in held[sz.n_distill : sz.n_distill + sz.n_suspect_queries]]
    quality_prompts = [q for q, _ in held[sz.n_distill + sz.n_suspect_queries :]]
    tok = tinylm.train_tokenizer([q + " " + r for q, r in pretrain], sz.vocab)
    pre_seqs = tinylm.encode_pairs(tok, pretrain)
    lap("data_and_tokenizer", t0)

    t0 = time.perf_counter()
    teacher = tinylm.build_model(sz.teacher, seed=p.seed)
    tstats = tinylm.train_lm(teacher, pre_seqs, sz.teacher, seed=p.seed, device=p.device, time_budget_s=sz.teacher_budget_s)
    lap("teacher_training", t0)

    store = KeyStore.generate(master=rng.randbytes(32))
    key = store.current()
    green = GreenList(key, p.gamma, p.context_width)
    proc = GreenListLogitsProcessor(green, p.delta)

    def gen(model: Any, prompts: Sequence[str], n: int, processor: Any = None, seed: int = 0) -> list[list[int]]:
        return tinylm.generate(model, tok, prompts, n, processor, batch=64, seed=seed, device=p.device, min_new_tokens=n // 2)

    # ---------------------------------------------------------------- distillation sets
    t0 = time.perf_counter()
    wm_out = gen(teacher, distill_prompts, sz.distill_tokens, proc, seed=1)
    lap("generate_watermarked_set", t0)
    t0 = time.perf_counter()
    clean_out = gen(teacher, distill_prompts, sz.distill_tokens, None, seed=2)
    lap("generate_clean_set", t0)

    # ---------------------------------------------------------------- text detection
    t0 = time.perf_counter()

    def enc(ids_list: Sequence[Sequence[int]]) -> list[list[int]]:
        return [e.ids for e in tok.encode_batch([tok.decode(x) for x in ids_list])]

    wm_text_ids = enc(wm_out)  # detection runs on text: decode, re-tokenize
    group = max(1, math.ceil(400 / max(1, sz.distill_tokens // 2)))
    wm_docs = [wm_text_ids[i : i + group * 2] for i in range(0, len(wm_text_ids), group * 2)]
    curve = _tpr_curve(wm_docs, green, p.alpha)
    curve_1e3 = _tpr_curve(wm_docs, green, 1e-3)
    clean_texts = [r for _, r in pairs]
    acc, kept_texts = 0, []
    for t in clean_texts:
        acc += len(t)
        if acc > sz.max_clean_chars:
            break
        kept_texts.append(t)
    clean_ids = [e.ids for e in tok.encode_batch(kept_texts)]
    # clean documents: each response, long ones split, so a document has >= 200 unique pairs if possible
    null_docs = [s for s in clean_ids if len(s) > 210]
    fpr: dict[str, Any] = {}
    all_exact: dict[int, list[float]] = {n: [] for n in LENGTHS}
    rand_200: np.ndarray = np.zeros(0)
    for k in range(sz.fpr_keys):
        g_k = GreenList(derive(rng.randbytes(32), 0), p.gamma, p.context_width) if k else green
        for n in LENGTHS:
            docs = _chunks(clean_ids, n + 40) if n < 200 else null_docs
            exact, rand = _null_pvalues(docs, g_k, n, np_rng)
            all_exact[n] += exact.tolist()
            if n == 200 and k == 0:
                rand_200 = rand
    for n in LENGTHS:
        arr = np.array(all_exact[n])
        fpr[str(n)] = {"fpr_at_alpha": float((arr < p.alpha).mean()) if len(arr) else None,
                       "fpr_at_1e-3": float((arr < 1e-3).mean()) if len(arr) else None,
                       "samples": len(arr), "keys": sz.fpr_keys}
    # calibration: the p-value is a probability over keys, so each clean document gets its own key
    cal = []
    for i, d in enumerate(null_docs):
        g_i = GreenList(derive(store.master, 10**6 + i), p.gamma, p.context_width)
        fp_i, fl_i = scored_pairs(d, g_i)
        r_i = first_unique(fp_i, fl_i, 200)
        if r_i is not None:
            cal.append(randomized_p(r_i[0], 200, p.gamma, float(np_rng.random())))
    ks = stats.kstest(cal, "uniform") if cal else None
    ks_fixed = stats.kstest(rand_200, "uniform") if len(rand_200) else None
    lap("text_detection", t0)

    # robustness: random substitution of tokens before detection
    t0 = time.perf_counter()
    robust = {}
    for frac in (0.1, 0.3):
        subbed = [[_substitute(s, frac, sz.vocab, rng) for s in d] for d in wm_docs]
        robust[f"substitute_{int(frac * 100)}pct"] = _tpr_curve(subbed, green, p.alpha)["200"]
    lap("robustness", t0)

    # ---------------------------------------------------------------- quality and speed
    t0 = time.perf_counter()
    q_len = sz.distill_tokens
    ref_clean = gen(teacher, quality_prompts, q_len, None, seed=3)
    ppl0 = tinylm.perplexity(teacher, tok, quality_prompts, ref_clean, p.device)
    quality: dict[str, Any] = {"reference": "teacher without watermark", "delta_0": {"ppl": ppl0}}
    for d in sz.deltas:
        outs = gen(teacher, quality_prompts, q_len, GreenListLogitsProcessor(green, d), seed=3)
        ppl = tinylm.perplexity(teacher, tok, quality_prompts, outs, p.device)
        re_ids = enc(outs)
        tpr = _tpr_curve([re_ids[i : i + 8] for i in range(0, len(re_ids), 8)], green, p.alpha)
        quality[f"delta_{d:g}"] = {"ppl": ppl, "ppl_ratio": ppl / ppl0, "green_share": _green_share(outs, green),
                                   "tpr_at_100": tpr["100"], "tpr_at_200": tpr["200"]}
    lap("quality", t0)

    t0 = time.perf_counter()
    speed_prompts = quality_prompts[:64]
    times_plain, times_wm = [], []
    for r in range(4):
        a = time.perf_counter()
        gen(teacher, speed_prompts, sz.distill_tokens, None, seed=10 + r)
        times_plain.append(time.perf_counter() - a)
        a = time.perf_counter()
        gen(teacher, speed_prompts, sz.distill_tokens, GreenListLogitsProcessor(green, p.delta), seed=10 + r)
        times_wm.append(time.perf_counter() - a)
    text_blob = ["\n\n".join(kept_texts[i : i + 20]) for i in range(0, len(kept_texts), 20)]
    detector = TextDetector(tok, green)
    a = time.perf_counter()
    for t in text_blob:  # text in, verdict out: tokenizing is part of the cost
        detector(t)
    det_s = time.perf_counter() - a
    mb = sum(len(t.encode()) for t in text_blob) / 1e6
    speed = {
        "generation_s_plain_min": min(times_plain), "generation_s_watermarked_min": min(times_wm),
        "processor_overhead": min(times_wm) / min(times_plain) - 1.0,
        "text_detection_mb_per_s": mb / det_s, "text_detection_mb": mb, "text_detection_docs": len(text_blob),
    }
    lap("speed", t0)

    # ---------------------------------------------------------------- students and the suspect test
    def student_on(outs: Sequence[Sequence[int]], seed: int) -> Any:
        eos = tok.token_to_id(tinylm.EOS)
        seqs = [[*tok.encode(tinylm.PROMPT_FMT.format(prompt=q)).ids, *o, eos] for q, o in zip(distill_prompts, outs, strict=True)]
        m = tinylm.build_model(sz.student, seed=seed)
        tinylm.train_lm(m, seqs, sz.student, seed=seed, device=p.device, time_budget_s=sz.student_budget_s)
        return m

    def suspect(model: Any, seed: int, record: list[list[int]]) -> dict[str, Any]:
        """The test as run on a black box: query lazily, stop once p < target."""
        outs_iter = _lazy_gen(lambda ps: gen(model, ps, sz.suspect_tokens, None, seed=seed), suspect_prompts, tok, record)
        rep = suspect_test(outs_iter, green, p.target_p, sz.n_suspect_queries)
        log(f"  suspect test: p = {rep.p_value:.3g} after {rep.queries} queries, {rep.detection.scored_tokens} scored tokens")
        return rep.to_dict()

    students: dict[str, Any] = {}
    t0 = time.perf_counter()
    students["watermarked"] = student_on(wm_out, 11)
    lap("student_watermarked", t0)
    t0 = time.perf_counter()
    students["clean"] = student_on(clean_out, 12)
    lap("student_clean", t0)
    for frac in sz.mixes:
        t0 = time.perf_counter()
        mixed = [w if rng.random() < frac else c for w, c in zip(wm_out, clean_out, strict=True)]
        students[f"mix_{int(frac * 100)}pct"] = student_on(mixed, 13)
        lap(f"student_mix_{int(frac * 100)}pct", t0)

    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    wm_student_outs: list[list[int]] = []
    clean_outs: list[list[int]] = []
    results["watermarked_student"] = suspect(students["watermarked"], 7, wm_student_outs)
    results["clean_student"] = suspect(students["clean"], 8, clean_outs)
    results["pretrain_model"] = suspect(teacher, 9, [])
    for frac in sz.mixes:
        results[f"mix_{int(frac * 100)}pct_student"] = suspect(students[f"mix_{int(frac * 100)}pct"], 10, [])
    lap("suspect_tests", t0)

    # the same outputs scored against keys never used: p-values must be uniform
    t0 = time.perf_counter()
    null_keys = [GreenList(derive(store.master, 0, f"null-{i}"), p.gamma, p.context_width) for i in range(sz.n_null_keys)]
    null_ps = [suspect_test(clean_outs, g, 0.0, len(clean_outs), check_every=len(clean_outs)).p_value for g in null_keys]
    wrong_key_ps = [suspect_test(wm_student_outs, g, 0.0, len(wm_student_outs), check_every=len(wm_student_outs)).p_value for g in null_keys]
    lap("null_keys", t0)

    lex = _lexical_eval(LexicalWatermark(key), [r for _, r in held], rng)
    caps = {str(c): _cap_cost([r for _, r in pairs[:2000]], c) for c in (50, 100, 200)}

    wm_p = results["watermarked_student"]["p_value"]
    clean_p = results["clean_student"]["p_value"]
    return {
        "size": size, "device": p.device, "seed": p.seed,
        "params": asdict(p),
        "sizes": {"vocab": sz.vocab, "teacher_params": tinylm.n_params(teacher),
                  "student_params": tinylm.n_params(students["clean"]),
                  "pretrain_pairs": len(pretrain), "pretrain_tokens": sum(map(len, pre_seqs)),
                  "distill_prompts": len(distill_prompts), "distill_tokens_watermarked": sum(map(len, wm_out)),
                  "distill_tokens_clean": sum(map(len, clean_out)), "teacher_training": tstats},
        "p_watermarked_student": wm_p,
        "p_clean_student": clean_p,
        "p_pretrain_model": results["pretrain_model"]["p_value"],
        "queries_watermarked_student": results["watermarked_student"]["queries"],
        "tpr_at_200_tokens": curve["200"]["tpr"],
        "fpr_clean": fpr["200"]["fpr_at_alpha"],
        "suspect": results,
        "clean_student_null_keys": {"p_values": null_ps, "ks_uniform_p": float(stats.kstest(null_ps, "uniform").pvalue), "keys": len(null_ps)},
        "watermarked_student_wrong_keys": {"p_values": wrong_key_ps, "ks_uniform_p": float(stats.kstest(wrong_key_ps, "uniform").pvalue),
                                           "queries": len(wm_student_outs)},
        "text_detection": {
            "alpha": p.alpha, "tpr_by_scored_tokens": curve, "tpr_by_scored_tokens_at_alpha_1e-3": curve_1e3,
            "fpr_clean_by_scored_tokens": fpr,
            "calibration_ks_uniform_p_at_200": float(ks.pvalue) if ks else None,
            "calibration_samples": len(cal),
            "calibration_note": "randomised p-values of clean documents at 200 unique scored tokens, one random key "
                                "per document (the p-value's probability is over keys); with one fixed key, pairs "
                                "common to many documents make their p-values correlated",
            "fixed_key_ks_uniform_p_at_200": float(ks_fixed.pvalue) if ks_fixed else None,
            "published_tpr_at_0.1pct_fpr": PUBLISHED_TPR_AT_0_1PCT_FPR,
        },
        "robustness": {**robust, "published_tpr_after_paraphrase_200": PUBLISHED_TPR_AFTER_PARAPHRASE_200},
        "quality": quality, "speed": speed, "lexical": lex, "cap_length_cost": caps,
        "timings_s": {**timings, "total": round(time.perf_counter() - t_start, 1)},
    }


def _green_share(outs: Sequence[Sequence[int]], green: GreenList) -> float:
    g = n = 0
    for o in outs:
        _, fl = scored_pairs(o, green)
        g += int(fl.sum())
        n += len(fl)
    return g / n if n else float("nan")


def _lazy_gen(
    gen: Callable[[Sequence[str]], list[list[int]]], prompts: Sequence[str], tok: Any, record: list[list[int]],
    batch: int = 64,
) -> Any:
    """Query in batches so the suspect test can stop early; outputs re-tokenized from text."""
    for i in range(0, len(prompts), batch):
        for ids in gen(prompts[i : i + batch]):
            out = tok.encode(tok.decode(ids)).ids
            record.append(out)
            yield out


def _lexical_eval(wm: LexicalWatermark, texts: Sequence[str], rng: random.Random) -> dict[str, Any]:
    """Text scheme: detection on marked vs clean responses, and how much text changed."""
    marked = [wm.apply(t) for t in texts]
    words = sum(len(t.split()) for t in texts)
    changed = sum(sum(a != b for a, b in zip(t.split(), m.split(), strict=False)) for t, m in zip(texts, marked, strict=True))
    same_meaning = sum(wm.canonical(t) == wm.canonical(m) for t, m in zip(texts, marked, strict=True)) / max(1, len(texts))
    # documents of ~20 responses: a distiller's harvest, not one reply
    docs = [" \n".join(marked[i : i + 20]) for i in range(0, len(marked), 20)]
    clean_docs = [" \n".join(texts[i : i + 20]) for i in range(0, len(texts), 20)]
    det = [wm.detect(d) for d in docs]
    null = [wm.detect(d) for d in clean_docs]
    return {
        "responses": len(texts), "words": words, "words_changed_share": changed / max(1, words),
        "canonical_form_identical_share": same_meaning,
        "meaning_measure": "every change is a swap inside a curated synonym group; share of responses whose "
                           "synonym-canonical form is identical to the original",
        "doc_responses": 20, "docs": len(docs),
        "tpr_at_1e-3": float(np.mean([d.p_value < 1e-3 for d in det])) if det else None,
        "fpr_at_1e-3": float(np.mean([d.p_value < 1e-3 for d in null])) if null else None,
        "median_slots_per_doc": float(np.median([d.scored for d in det])) if det else None,
    }


def _cap_cost(texts: Sequence[str], max_words: int) -> dict[str, float]:
    res = [cap_length(t, max_words) for t in texts]
    return {"responses_cut_share": float(np.mean([r.changed for r in res])),
            "words_kept_share": float(np.mean([r.kept for r in res]))}


def with_size(size: str, **changes: Any) -> Size:
    """A copy of a named size with some fields changed (tests shrink further)."""
    return replace(SIZES[size], **changes)
