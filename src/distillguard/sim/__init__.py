"""The traffic simulator: benign platform traffic plus distillation campaigns, as an exchange log.

:func:`simulate` reads a scenario (YAML), draws every account
(:mod:`~distillguard.sim.population`), then generates exchanges chunk by chunk
(:mod:`~distillguard.sim.traffic`) and streams them to a log folder through
:class:`~distillguard.io.LogWriter`, so memory stays bounded whatever the
scale. Same scenario, scale and seed give byte-identical tables.
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from distillguard import corpora
from distillguard.errors import ConfigError
from distillguard.sim.archetypes import Ctx
from distillguard.sim.pools import build_pools, fallback_corpora
from distillguard.sim.population import ARCHETYPES, plan_population
from distillguard.sim.scenario import ATTACK, BENIGN, Scenario, builtin_names, load_scenario
from distillguard.sim.traffic import Traffic

__all__ = [
    "ATTACK",
    "BENIGN",
    "FallbackCorpusWarning",
    "Scenario",
    "SimSummary",
    "builtin_names",
    "load_scenario",
    "simulate",
]

CHUNK_ROWS = 400_000
"""Exchanges generated (and held in memory) per chunk of accounts."""


class FallbackCorpusWarning(UserWarning):
    """No corpus was found; prompts come from a procedural generator and are not realistic."""


@dataclass
class ArchetypeStats:
    accounts: int = 0
    exchanges: int = 0
    campaigns: int = 0
    repeat_rate: float = 0.0  # share of its exchanges whose prompt occurs again within the archetype


@dataclass
class SimSummary:
    """What a simulation produced: counts per archetype, duplicate rates, corpora, timing."""

    scenario: str
    n_accounts: int
    n_exchanges: int
    seconds: float
    out: Path
    archetypes: dict[str, ArchetypeStats]
    near_duplicates: dict[str, float]
    corpora: list[str]
    fallback: bool
    scale: float = 1.0
    seed: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def render(self) -> RenderableType:
        """A rich table of the run (for the CLI)."""
        t = Table(title=f"simulated {self.scenario} (scale {self.scale:g}, seed {self.seed}) -> {self.out}")
        t.add_column("archetype")
        t.add_column("kind")
        t.add_column("accounts", justify="right")
        t.add_column("exchanges", justify="right")
        t.add_column("campaigns", justify="right")
        t.add_column("prompt repeats", justify="right")
        for name, s in self.archetypes.items():
            t.add_row(name, "attack" if name in ATTACK else "benign", f"{s.accounts:,}", f"{s.exchanges:,}",
                      str(s.campaigns) if name in ATTACK else "", f"{s.repeat_rate:.1%}")
        t.add_row("total", "", f"{self.n_accounts:,}", f"{self.n_exchanges:,}", "", style="bold")
        d = Table(title="benign prompt repetition (share of benign exchanges whose prompt occurs again)")
        for k in self.near_duplicates:
            d.add_column(k, justify="right")
        d.add_row(*(f"{v:.1%}" for v in self.near_duplicates.values()))
        rate = self.n_exchanges / self.seconds if self.seconds else 0.0
        parts: list[RenderableType] = [t, d, Text(f"{self.seconds:.1f} s, {rate:,.0f} exchanges/s; corpora: "
                                                  + (", ".join(self.corpora) or "none"))]
        if self.fallback:
            parts.append(Text("WARNING: no corpus found - FALLBACK generator used; prompts are synthetic word salad. "
                              "Run `distillguard data fetch` or pass --data.", style="bold red"))
        return Group(*parts)


class _DupStats:
    """Exact (byte-identical) and first-40-character (case-folded) repetition of prompts, per archetype."""

    def __init__(self) -> None:
        self.full: list[np.ndarray] = []
        self.prefix: list[np.ndarray] = []
        self.length: list[np.ndarray] = []
        self.arch: list[np.ndarray] = []

    def add(self, prompts: pa.Array, arch: np.ndarray) -> None:
        import polars as pl

        s = pl.Series(prompts).fill_null("")
        self.full.append(s.hash(seed=0).to_numpy())
        self.prefix.append(s.str.slice(0, 40).str.to_lowercase().hash(seed=0).to_numpy())
        self.length.append(np.minimum(s.str.len_chars().to_numpy(), 65535).astype(np.uint16))
        self.arch.append(arch)

    def rates(self) -> tuple[dict[str, float], dict[str, float]]:
        """Benign rates by length bucket, and the exact-repeat rate per archetype."""
        if not self.full:
            return {}, {}
        full, pre, ln, arch = (np.concatenate(x) for x in (self.full, self.prefix, self.length, self.arch))
        benign = arch < len(BENIGN)
        # repeats are counted within benign traffic (and within each archetype below)
        rf, rp = self._repeated(full, benign), self._repeated(pre, benign)
        short, long_ = ln < 64, ln >= 256
        mid = ~short & ~long_
        people = benign & ~np.isin(arch, [ARCHETYPES.index("eval_runner"), ARCHETYPES.index("enterprise_app")])

        def share(mask: np.ndarray, sel: np.ndarray) -> float:
            return float(mask[sel].mean()) if sel.any() else 0.0

        overall = {
            "exact, all benign": share(rf, benign),
            "exact, people only": share(rf, people),
            "exact, <64 chars": share(rf, benign & short),
            "exact, 64-255": share(rf, benign & mid),
            "exact, >=256": share(rf, benign & long_),
            "same first 40 chars": share(rp, benign),
        }
        per = {}
        for i, a in enumerate(ARCHETYPES):
            sel = arch == i
            if sel.any():
                per[a] = share(self._repeated(full, sel), sel)
        return overall, per

    @staticmethod
    def _repeated(h: np.ndarray, sel: np.ndarray) -> np.ndarray:
        out = np.zeros(len(h), bool)
        _, inv, cnt = np.unique(h[sel], return_inverse=True, return_counts=True)
        out[sel] = cnt[inv] > 1
        return out


def _chunks(n_ex: np.ndarray, order: np.ndarray, target: int) -> list[np.ndarray]:
    cs = np.cumsum(n_ex[order])
    if not len(cs):
        return []
    cut = np.searchsorted(cs, np.arange(target, int(cs[-1]) + target, target), side="right")
    bounds = np.unique(np.concatenate([[0], cut, [len(order)]]).astype(np.int64))
    return [order[a:b] for a, b in itertools.pairwise(bounds.tolist()) if b > a]


MARKER = ".distillguard-simulate"
"""File ``simulate`` leaves in a log folder it wrote: it may replace that folder's tables."""


def check_out(out: Path, force: bool = False) -> None:
    """Refuse an output folder that holds anything ``simulate`` did not write (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if force or not out.exists() or (out / MARKER).exists():
        return
    theirs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    if theirs:
        raise ConfigError(
            f"--out {out} holds files distillguard simulate did not write (e.g. {theirs[0]}); "
            "choose an empty folder, or pass --force to replace its exchanges/, accounts/ and labels/"
        )


def simulate(
    scenario: str | Path,
    *,
    scale: float = 1.0,
    seed: int = 0,
    out: Path,
    data_dir: Path | None = None,
    responses: bool = True,
    fmt: str = "parquet",
    progress: bool = True,
    force: bool = False,
) -> SimSummary:
    """Simulate a scenario into a log folder (``exchanges/``, ``accounts/``, ``labels/``).

    Parameters
    ----------
    scenario
        Built-in name (``smoke``, ``demo``, ``qwen-2026``, ``feb-2026``, ``tactics-2026``) or a YAML path.
    scale
        Multiplies account counts; total volumes stay proportional.
    seed
        Same seed, same tables (byte for byte).
    out
        The log folder. Its table folders are replaced when it was written by ``simulate``
        (it holds the marker file ``.distillguard-simulate``) or when ``force``; a folder
        holding anything else is refused, so a user's own files are never deleted.
    data_dir
        Corpora folder (see :func:`distillguard.corpora.locate`); empty means the fallback generator.
    responses
        ``False`` leaves response text out; token counts stay.
    fmt
        ``parquet``, ``jsonl`` or ``csv``.
    progress
        Show a rich progress bar.
    force
        Replace the table folders of ``out`` even when it was not written by ``simulate``.
    """
    check_out(Path(out), force)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from distillguard.io import LogWriter

    t0 = time.perf_counter()
    sc0 = load_scenario(scenario)
    sc, _ = sc0.scaled(scale)
    status = Console(stderr=True).status("loading corpora and drawing accounts") if progress else None
    if status is not None:
        status.start()
    corp = corpora.load(data_dir)
    fallback = corp.empty
    if fallback:
        warnings.warn(
            f"no corpus found in {corpora.locate(data_dir)}: using the FALLBACK generator (synthetic prompts); "
            "run `distillguard data fetch` for realistic traffic", FallbackCorpusWarning, stacklevel=2)
        corp = fallback_corpora(seed)
    pools = build_pools(corp, fallback)
    ss = np.random.SeedSequence([sc.seed & 0xFFFFFFFF, seed & 0xFFFFFFFF])
    s_plan, s_ctx, s_order, s_rows = ss.spawn(4)
    ctx = Ctx(pools, np.random.default_rng(s_ctx))
    plan, accounts, labels = plan_population(sc, pools, np.random.default_rng(s_plan))
    traffic = Traffic(sc, plan, pools, ctx, responses=responses)
    if status is not None:
        status.stop()
    order = np.random.default_rng(s_order).permutation(plan.n)
    chunks = _chunks(plan.a_n_ex, order, CHUNK_ROWS)
    total = int(plan.a_n_ex.sum())
    dup = _DupStats()
    stats = {a: ArchetypeStats() for a in ARCHETYPES}
    counts = np.bincount(plan.a_arch, minlength=len(ARCHETYPES))
    vols = np.bincount(plan.a_arch, weights=plan.a_n_ex, minlength=len(ARCHETYPES))
    for i, a in enumerate(ARCHETYPES):
        stats[a].accounts = int(counts[i])
        stats[a].exchanges = int(vols[i])
    for c in sc.campaigns:
        stats[c.archetype].campaigns += 1
    n_rows = 0
    row_seeds = s_rows.spawn(len(chunks))
    with (
        LogWriter(out, fmt=fmt, overwrite=True) as writer,
        Progress(TextColumn("simulate {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 disable=not progress, transient=True) as bar,
    ):
        (Path(out) / MARKER).write_text(json.dumps({"scenario": str(scenario), "scale": scale, "seed": seed}) + "\n")
        writer.write_accounts(accounts)
        writer.write_labels(labels)
        task = bar.add_task(sc.name, total=total)
        for ch, cs in zip(chunks, row_seeds, strict=True):
            table, arch = traffic.chunk(np.random.default_rng(cs), ch)
            dup.add(table.column("prompt").combine_chunks(), arch)
            writer.write_exchanges(table)
            n_rows += table.num_rows
            bar.advance(task, table.num_rows)
            del table
    overall, per = dup.rates()
    for a, r in per.items():
        stats[a].repeat_rate = r
    return SimSummary(
        scenario=sc.name, n_accounts=plan.n, n_exchanges=n_rows, seconds=time.perf_counter() - t0, out=Path(out),
        archetypes={k: v for k, v in stats.items() if v.accounts}, near_duplicates=overall,
        corpora=pools.sources, fallback=fallback, scale=scale, seed=seed,
    )
