"""Operators' front domains are their own: no other company or operator has them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from distillguard.sim import infra
from distillguard.sim.population import _Builder


def test_front_domains_avoid_every_domain_already_handed_out() -> None:
    taken = set(infra.company_domains(np.random.default_rng(0), 20_000))
    raw = infra.company_domains(np.random.default_rng(1), 2_000)
    assert taken & set(raw)  # the syllable generator alone does repeat names
    holder = SimpleNamespace(domains_taken=set(taken))
    fronts = _Builder.front_domains(holder, np.random.default_rng(1), 2_000)  # type: ignore[arg-type]
    assert len(fronts) == len(set(fronts)) == 2_000
    assert not taken & set(fronts)
    assert holder.domains_taken == taken | set(fronts)
