"""Evaluation: replay a labelled log through a detector and score what it caught, and when.

``run_bench(log, detector=...)`` returns a :class:`BenchResult` (precision, recall and FPR
per account and per archetype, campaign recovery, time to detect, exchanges leaked before
detection, throughput and memory). ``replay`` is the detector-agnostic simulated-time
driver underneath; ``evaluate`` is ``run_bench`` for an already open reader.
"""

from distillguard.bench.harness import evaluate, run_bench
from distillguard.bench.replay import ReplayResult, replay
from distillguard.bench.result import BenchResult

__all__ = ["BenchResult", "ReplayResult", "evaluate", "replay", "run_bench"]
