"""End-to-end watermark proof on a tiny model trained here: radioactivity of distillation.

Why a script: the whole loop (tokenizer, teacher, two distillation sets, students, the
suspect-model test, detection curves, quality and speed) is minutes on CPU, too long for
the test suite, which runs the same code (``distillguard.watermark.experiment``) at a
smaller size.

Usage::

    python benchmarks/watermark_radioactivity.py --size small --json benchmarks/results/watermark-small.json
    python benchmarks/watermark_radioactivity.py --size small --mixes 0.1 0.5 --json benchmarks/results/watermark-small-mix.json
    python benchmarks/watermark_radioactivity.py --size full --device cuda --json benchmarks/results/watermark-full-cuda.json

Reads the corpora under ``../shared/datasets`` (or ``--data``) at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from distillguard.watermark import experiment


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(experiment.SIZES), default="small")
    ap.add_argument("--json", type=Path, required=True, help="Write the result JSON here.")
    ap.add_argument("--device", default="cpu", help="cpu or cuda.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--delta", type=float, default=experiment.Params.delta)
    ap.add_argument("--gamma", type=float, default=experiment.Params.gamma)
    ap.add_argument("--data", type=Path, default=None, help="Corpora folder (default: ../shared/datasets).")
    ap.add_argument("--mixes", type=float, nargs="*", default=None,
                    help="Also train students on these watermarked shares of the distillation set (e.g. 0.1 0.5).")
    ap.add_argument("--threads", type=int, default=experiment.Params.threads, help="torch CPU threads.")
    args = ap.parse_args(argv)

    import torch

    params = experiment.Params(gamma=args.gamma, delta=args.delta, seed=args.seed, device=args.device, threads=args.threads)
    size = experiment.SIZES[args.size]
    if args.mixes is not None:
        size = experiment.with_size(args.size, mixes=tuple(args.mixes))
    result = experiment.run(size, params, args.data, log=lambda m: print(m, file=sys.stderr, flush=True))
    result["machine"] = {
        "python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
        "cpu_count": os.cpu_count(), "load_average_1min_at_end": os.getloadavg()[0],
        "cuda": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=float))
    keys = ["p_watermarked_student", "queries_watermarked_student", "p_clean_student", "p_pretrain_model",
            "tpr_at_200_tokens", "fpr_clean"]
    print(json.dumps({k: result[k] for k in keys} | {"total_s": result["timings_s"]["total"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
