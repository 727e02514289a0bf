"""The reader's set of request ids (``distillguard.io.reader.RequestIds``): seconds to add a log's
ids in the batches a hunt reads them in, at a tenth of full-scale ``qwen-2026`` and at full scale.

    PYTHONPATH=src python benchmarks/bench_request_ids.py [--repeat 3] [--json F]

Ids are random 64-bit values (the reader keeps Polars' 64-bit hash of each id), 130,000 a batch
at 5.78 million (a day at ``--scale 0.1`` is one batch) and 183,000 a batch at 57.8 million
(a full-scale day in the budget's slices); every tenth batch repeats 100 ids of the one before,
which must come back as repeats. Run it with another commit's ``src`` on ``PYTHONPATH`` to
compare; the growth ratio (seconds at 57.8M over seconds at 5.78M; 10 is linear) is the number
that matters for the hunt's growth exponent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

from distillguard.io.reader import RequestIds

SIZES = ((5_780_000, 130_000), (57_800_000, 183_000))


def seconds(n_ids: int, batch: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    ids, spent, prev = RequestIds(), 0.0, None
    for i in range(n_ids // batch):
        h = rng.integers(0, 2**64, size=batch, dtype=np.uint64)
        if prev is not None and i % 10 == 0:
            h[:100] = prev[:100]
        t = time.perf_counter()
        dup = ids.add(h)
        spent += time.perf_counter() - t
        if prev is not None and i % 10 == 0 and not (dup[:100].all() and not dup[100:].any()):
            raise AssertionError(f"batch {i}: repeats not found")
        prev = h
    return spent


def commit() -> str:
    """The checkout's short commit (run from another commit's worktree to compare)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


def report(out: dict[str, object], path: Path | None) -> None:
    """Print the result, and write it to ``path`` where one is given."""
    print(json.dumps(out, indent=2))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    runs = {n: [round(seconds(n, b, seed), 3) for seed in range(args.repeat)] for n, b in SIZES}
    med = {n: statistics.median(v) for n, v in runs.items()}
    (small, _), (large, _) = SIZES
    out: dict[str, object] = {
        "commit": commit(),
        "seconds": {str(n): v for n, v in runs.items()},
        "median_seconds": {str(n): round(v, 3) for n, v in med.items()},
        "growth_ratio": round(med[large] / med[small], 2),
    }
    report(out, args.json)


if __name__ == "__main__":
    main()
