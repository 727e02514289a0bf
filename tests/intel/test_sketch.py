from __future__ import annotations

from distillguard.intel.keyed import ConsortiumKey
from distillguard.intel.sketch import MATCH_THRESHOLD, similarity, sketch

KEY = ConsortiumKey(bytes.fromhex("5a17" * 16), epoch=3)
TEMPLATE = ("Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request. Instruction: summarise the article on {x}.")  # fmt: skip


def test_a_reworded_template_matches_and_an_unrelated_one_does_not() -> None:
    base = sketch(TEMPLATE.format(x="solar power"), KEY)
    para = sketch("Here is an instruction describing a task, together with an input giving further context. "
                  "Write a response that completes the request appropriately. Instruction: summarise the article on wind farms.", KEY)  # fmt: skip
    other = sketch("Translate the following customer e-mail into French and keep the tone polite and formal.", KEY)
    assert base is not None and para is not None and other is not None
    assert similarity(base, para) >= MATCH_THRESHOLD
    assert similarity(base, other) < 0.2


def test_without_the_key_or_in_another_epoch_nothing_matches() -> None:
    text = TEMPLATE.format(x="solar power")
    mine = sketch(text, KEY)
    assert mine is not None
    for other in (ConsortiumKey(bytes.fromhex("77" * 32), 3), ConsortiumKey(KEY.secret, 4)):
        theirs = sketch(text, other)
        assert theirs is not None and similarity(mine, theirs) < 0.1


def test_too_short_texts_are_not_sketched() -> None:
    assert sketch("Explain this, please.", KEY) is None
