"""``distillguard ui``: the analysts' dashboard over a hunt's output.

It lists the campaigns and accounts a hunt found with their evidence, and records each
analyst's block, allow or appeal (who, why, when, what stood before) in the append-only
log of :mod:`distillguard.review`, which a gateway started with ``serve --decisions HUNT_DIR``
follows and enforces within a tenth of a second.
"""
