"""The one rule from risk and campaign to an action, shared by the hunt and the gateway.

The hunt writes ``decision`` with it; the gateway enforces the same object on the next
request of an account. Thresholds are data (``policy:`` in a hunt config YAML), never code.

Actions, mildest first:

* ``allow``: serve as usual;
* ``throttle``: serve under tighter rate and token limits (a lone outlier, no campaign);
* ``verify``: refuse until the account passes identity or business verification (a
  campaign member whose risk is below ``block_risk``);
* ``block``: refuse (a campaign member at or above ``block_risk``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

import polars as pl

from distillguard.errors import ConfigError

__all__ = ["DECISIONS", "Decision", "Policy"]

Decision = Literal["allow", "throttle", "verify", "block"]
DECISIONS: tuple[Decision, ...] = get_args(Decision)


@dataclass(frozen=True)
class Policy:
    """Risk and campaign membership to an action.

    Parameters
    ----------
    block_risk
        A flagged account (member of a significant campaign) at or above this risk is
        blocked; below it, it gets ``member_action``.
    member_action
        What a flagged account below ``block_risk`` gets.
    outlier_action
        What an unflagged account gets when its behaviour is in the population's top
        ``target_fpr`` (a lone outlier: enterprise apps and eval runners look like this,
        so never more than a throttle by default).

    Examples
    --------
    >>> p = Policy()
    >>> p.decide(flagged=True, risk=0.9, outlier=False), p.decide(True, 0.6, False)
    ('block', 'verify')
    >>> p.decide(False, 0.3, True), p.decide(False, 0.3, False)
    ('throttle', 'allow')
    """

    block_risk: float = 0.85
    member_action: Decision = "verify"
    outlier_action: Decision = "throttle"

    def __post_init__(self) -> None:
        if not 0.5 <= self.block_risk <= 1.0:
            raise ConfigError(
                f"policy.block_risk has value {self.block_risk!r}; expected a risk in [0.5, 1] "
                "(flagged accounts have risk 0.5 or more)"
            )
        for key in ("member_action", "outlier_action"):
            value = getattr(self, key)
            if value not in DECISIONS:
                raise ConfigError(f"policy.{key} has value {value!r}; expected one of {', '.join(DECISIONS)}")

    def decide(self, flagged: bool, risk: float, outlier: bool) -> Decision:
        """The action for one account (the gateway's path)."""
        if flagged:
            return "block" if risk >= self.block_risk else self.member_action
        return self.outlier_action if outlier else "allow"

    def expr(self, flagged: pl.Expr, risk: pl.Expr, outlier: pl.Expr) -> pl.Expr:
        """The same rule over columns (the hunt's path); agrees with :meth:`decide`."""
        return (
            pl.when(flagged & (risk >= self.block_risk))
            .then(pl.lit("block"))
            .when(flagged)
            .then(pl.lit(self.member_action))
            .when(outlier)
            .then(pl.lit(self.outlier_action))
            .otherwise(pl.lit("allow"))
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "policy") -> Policy:
        """Build from a config mapping; an unknown key is an error naming it."""
        names = {f.name for f in fields(cls)}
        for key in data:
            if key not in names:
                raise ConfigError(f"{source}.{key} is not a policy setting; expected one of {', '.join(sorted(names))}")
        return cls(**dict(data))
