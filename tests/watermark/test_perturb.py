from distillguard.watermark.perturb import cap_length, strip_reasoning


def test_strip_reasoning_removes_blocks_and_reports_cost():
    p = strip_reasoning("<think>Step one. Step two.</think>The answer is 4.")
    assert p.text == "The answer is 4." and p.changed and 0 < p.kept < 1
    assert strip_reasoning("plain answer").changed is False


def test_summary_keeps_the_conclusion_of_the_reasoning():
    p = strip_reasoning("<reasoning>Try a. So it is b.</reasoning>Answer: b", summary=True)
    assert "So it is b." in p.text and "Try a." not in p.text and p.text.endswith("Answer: b")


def test_unclosed_block_is_stripped_to_the_end():
    assert strip_reasoning("Hi <think>never closed").text == "Hi "


def test_cap_length_cuts_at_a_sentence_end():
    p = cap_length("One two three. Four five six. Seven eight nine.", 7)
    assert p.text == "One two three. Four five six."
    assert p.kept == 6 / 9
    assert cap_length("short text", 10).changed is False
    assert cap_length("no sentence end in these many words at all", 3).text == "no sentence end"
