"""Rule loading, error locations, and compiled-vs-reference agreement."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from distillguard.errors import ConfigError
from distillguard.ruleset import OPERATORS, RuleSet, builtin_paths

PLAIN_CHAT = [
    "hi! how are you today?",
    "What's the capital of Australia?",
    "Can you recommend a good book about the history of Rome?",
    "My cat keeps scratching the sofa, what can I do?",
    "Translate 'good morning' into French please.",
    "I feel a bit sad today. Any tips to cheer up?",
    "Who won the world cup in 2010?",
    "Tell me a joke about penguins.",
]

TYPICAL: list[tuple[str, str]] = [
    ("Solve this riddle. Think step by step and show your reasoning.", "elicitation.step_by_step"),
    ("Walk me through how compound interest works.", "elicitation.step_by_step"),
    (
        "Please act as an impartial judge and evaluate the response below.",
        "elicitation.rubric_grading",
    ),
    ("Grade the following essay using the rubric.", "elicitation.rubric_grading"),
    ("Rate this answer from 1 to 10 for helpfulness.", "elicitation.rubric_grading"),
    (
        "You are asked to come up with a set of 20 diverse task instructions.",
        "elicitation.generate_examples",
    ),
    ("Generate 10 examples of customer complaints.", "elicitation.generate_examples"),
    ("Write 50 math word problems for grade 5.", "elicitation.generate_examples"),
    ("I want you to act as a prompt rewriter. #Given Prompt#: ...", "elicitation.evol_rewrite"),
    ("Write an essay of at least 2000 words on climate policy.", "elicitation.long_output"),
    ("List three fruits. Respond in JSON with a key 'fruits'.", "structure.output_format"),
    ("Summarise the text.\nOutput format: bullet list", "structure.output_format"),
    (
        "Below is an instruction that describes a task.\n\n### Instruction:\nSum 2 and 3\n\n### Response:\n",
        "structure.instruction_template",
    ),
    ("Input: the cat sat\nOutput:", "structure.field_template"),
    ("Question: what is 2+2?\nAnswer:", "structure.field_template"),
    (
        '{"task": "classify", "text": "I loved it", "labels": ["pos", "neg"]}',
        "structure.non_natural",
    ),
    ("name: Alice\nage: 31\ncity: Paris\nrole: engineer\nlevel: senior", "structure.non_natural"),
    ("```python\nprint('hi')\n```", "coding.code_fence"),
    ("Write a function that reverses a linked list.", "coding.request"),
    ("Traceback (most recent call last):\n  File 'x.py'", "coding.request"),
    ("How do I read a CSV file in Python?", "coding.language"),
    ("What does std::move do in C++?", "coding.language"),
    ("def add(a, b):\n    return a + b\nwhy does this fail?", "coding.code_syntax"),
    ("You have access to the following tools: search(query), calc(expr)", "agentic.tools"),
    ("toolformer: enabled\ntoolformer access: weather", "agentic.tools"),
    ("Thought: I need the weather.\nAction: weather\nAction Input: Paris", "agentic.react"),
    ("You are an autonomous agent. Break down the task into subtasks.", "agentic.planning"),
    ("$ git clone https://x/y.git\nit fails with permission denied", "agentic.shell"),
    ("Build a complete e-commerce web app with auth and payments.", "long_horizon.project"),
    ("Design and implement an end-to-end data pipeline.", "long_horizon.project"),
    (
        "Requirements:\n1. login\n2. signup\n3. profile page\n4. settings\n5. admin panel",
        "long_horizon.many_requirements",
    ),
    ("word " * 3000, "long_horizon.very_long_prompt"),
]


@pytest.fixture(scope="module")
def builtin() -> RuleSet:
    return RuleSet.load()


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_loads_every_category(builtin: RuleSet) -> None:
    assert set(builtin.categories) == {
        "elicitation",
        "structure",
        "coding",
        "agentic",
        "long_horizon",
    }
    assert RuleSet.builtin().rules == builtin.rules
    assert all(r.source is not None and r.source.line for r in builtin.rules)


@pytest.mark.parametrize(("text", "rule_id"), TYPICAL, ids=[r for _, r in TYPICAL])
def test_rule_fires_on_typical_text(builtin: RuleSet, text: str, rule_id: str) -> None:
    df = pl.DataFrame({"prompt": [text]})
    assert df.select(builtin.compile_polars()[rule_id]).item() is True
    assert builtin.evaluate_row({"prompt": text})[rule_id] is True


def test_no_rule_fires_on_plain_chat(builtin: RuleSet) -> None:
    df = pl.DataFrame({"prompt": PLAIN_CHAT})
    hits = df.select(builtin.category_exprs().values())
    assert not any(hits.row(i)[j] for i in range(hits.height) for j in range(hits.width)), hits


def test_every_builtin_rule_has_a_typical_example(builtin: RuleSet) -> None:
    assert {r.id for r in builtin.rules} == {rid for _, rid in TYPICAL}


ALL_OPERATORS = """\
- id: t.contains
  title: contains
  category: a
  match: {contains: ["Step by step", "ÉTAPE", "naïve", "+?(x)"]}
- id: t.regex
  title: regex
  category: a
  match:
    regex: ["^[A-Z]{3}\\\\d", "(?i)colou?r", "(?m)^key:"]
- id: t.min_len
  title: min_len counts characters not bytes
  category: b
  match: {min_len: 5}
- id: t.line_share
  title: line share
  category: b
  match:
    line_share: {regex: "^\\\\s*\\\\w+\\\\s*[:=]", min: 0.6}
- id: t.nested
  title: nested
  category: b
  match:
    any_of:
      - all_of:
          - contains: [alpha]
          - regex: ["beta|γάμμα"]
      - min_len: 30
        contains: [zeta]
- id: t.system
  title: system field
  category: c
  field: system
  match: {contains: [you are]}
- id: t.response
  title: response field
  category: c
  field: response
  match: {regex: ["\\\\d{2,}"]}
"""

VARIED_TEXTS: list[str | None] = [
    None,
    "",
    "step BY STEP",
    "étape par étape",
    "ÉTAPE",
    "NAÏVE approach",
    "naive approach",
    "a +?(x) b",
    "ABC1 rest",
    "abc1 rest",
    "COLOR and Colour",
    "first\nkey: v",
    "key: 1\nval = 2\nnot kv line",
    "key: 1\n\nnot kv line",
    "ééééé",
    "éééé",
    "🙂🙂🙂🙂🙂",
    "alpha γάμμα",
    "ALPHA beta",
    "alpha only",
    "zeta " * 7,
    "zeta",
    "You Are a helpful assistant 42",
    "İstanbul ΣΊΣΥΦΟΣ straße",
    "line1\r\nkey: x\r\n",
]


def test_all_operators_are_exercised() -> None:
    assert set(OPERATORS) == {"contains", "regex", "min_len", "line_share", "any_of", "all_of"}


def test_compiled_agrees_with_reference(tmp_path: Path, builtin: RuleSet) -> None:
    custom = RuleSet.load([write(tmp_path, ALL_OPERATORS)])
    texts = VARIED_TEXTS + [t for t, _ in TYPICAL] + PLAIN_CHAT
    # Every field takes every text, shifted so that fields differ within a row.
    rows: list[dict[str, Any]] = [
        {
            "prompt": p,
            "system": texts[(i + 3) % len(texts)],
            "response": texts[(i + 7) % len(texts)],
        }
        for i, p in enumerate(texts)
    ]
    df = pl.DataFrame(
        rows, schema={"prompt": pl.String, "system": pl.String, "response": pl.String}
    )
    for rs in (custom, builtin):
        compiled = df.select(rs.compile_polars().values())
        for row, got in zip(rows, compiled.iter_rows(named=True), strict=True):
            assert got == rs.evaluate_row(row), row


OVERLAPPING = """
- id: o.nested_phrases
  title: phrases inside phrases
  category: o
  match: {contains: ["step by step", "by step", "STEP"]}
- id: o.gated_regex
  title: a regex behind its literals
  category: o
  match:
    all_of:
      - contains: [rate, score]
      - regex: ["(?i)\\\\b(?:rate|score)\\\\b.{0,20}\\\\d"]
- id: o.either
  title: a phrase or a regex behind another phrase
  category: o
  match:
    any_of:
      - contains: [by step]
      - all_of:
          - contains: [alpha]
          - min_len: 12
"""

NON_ASCII_CASE = """
- id: u.upper
  title: upper
  category: u
  match: {contains: ["Über"]}
- id: u.lower
  title: lower
  category: u
  match: {contains: ["über"]}
"""


@pytest.mark.parametrize("extra", [OVERLAPPING, NON_ASCII_CASE], ids=["overlapping", "non-ascii-case"])
def test_apply_agrees_with_the_reference(tmp_path: Path, builtin: RuleSet, extra: str) -> None:
    # apply() finds every phrase of a field in one scan and runs each rule where its own
    # literals are; phrases apart only in non-ASCII case take the per-rule path.
    custom = RuleSet.load([write(tmp_path, ALL_OPERATORS + extra)])
    texts = VARIED_TEXTS + [t for t, _ in TYPICAL] + PLAIN_CHAT + [
        "Step by STEP by step", "by stepping", "rate it 9", "score: 7 of 10", "RATE this essay",
        "Über alles", "über alles", "ÜBER", "alpha", "alpha and more text", "ALPHA beta step",
    ]  # fmt: skip
    rows: list[dict[str, Any]] = [
        {"prompt": p, "system": texts[(i + 3) % len(texts)], "response": texts[(i + 7) % len(texts)]}
        for i, p in enumerate(texts)
    ]
    df = pl.DataFrame(rows, schema={"prompt": pl.String, "system": pl.String, "response": pl.String})
    for rs in (custom, builtin):
        out = rs.apply(df, rs.categories, ids="ids")
        for row, ids in zip(rows, out["ids"], strict=True):
            assert set(ids) == {rid for rid, hit in rs.evaluate_row(row).items() if hit}, row


def test_reference_semantics_on_edge_cases(tmp_path: Path) -> None:
    rs = RuleSet.load([write(tmp_path, ALL_OPERATORS)])
    ev = rs.evaluate_row
    assert ev({"prompt": "step BY STEP"})["t.contains"]
    assert ev({"prompt": "naïve"})["t.contains"] and not ev({"prompt": "naive"})["t.contains"]
    assert ev({"prompt": "ééééé"})["t.min_len"] and not ev({"prompt": "éééé"})["t.min_len"]
    assert not ev({"prompt": None})["t.min_len"]
    assert not ev({})["t.system"]  # absent column is null
    assert ev({"prompt": "key: 1\nval = 2\nnot kv line"})["t.line_share"]  # 2/3 >= 0.6
    assert not ev({"prompt": "key: 1\n\nnot kv line"})["t.line_share"]  # 1/3


def test_null_typed_and_missing_values_never_match(builtin: RuleSet) -> None:
    df = pl.DataFrame({"prompt": [None, None]})  # dtype Null, as an all-null column arrives
    assert df.schema["prompt"] == pl.Null
    out = df.select(builtin.category_exprs().values())
    assert out.height == 2 and not any(v for col in out.iter_columns() for v in col)


def test_matched_ids_lists_every_matching_rule(builtin: RuleSet) -> None:
    df = pl.DataFrame({"prompt": ["Think step by step. Respond in JSON.", "hello", None]})
    got = df.select(builtin.matched_ids("ids"))["ids"].to_list()
    assert got == [["elicitation.step_by_step", "structure.output_format"], [], []]


def test_user_files_add_to_builtin(tmp_path: Path) -> None:
    extra = write(
        tmp_path,
        "- id: mine.secret\n  title: t\n  category: elicitation\n  match: {contains: [xyzzy]}\n",
    )
    rs = RuleSet.load([*builtin_paths(), extra])
    assert rs["mine.secret"].category == "elicitation"
    assert len(rs) == len(RuleSet.builtin()) + 1


BROKEN = """\
- id: ok.rule
  title: fine
  category: a
  match: {contains: [fine]}
- id: bad.operator
  title: typo
  category: a
  match:
    contain: [x]
- id: bad.regex
  title: bad regex
  category: a
  match:
    regex:
      - "ok"
      - "(unclosed"
- id: bad.field
  title: field
  category: a
  field: body
  match: {min_len: 3}
- id: bad.missing
  category: a
  match: {min_len: 3}
- id: bad.lookaround
  title: python-only regex
  category: a
  match: {regex: ["foo(?=bar)"]}
- id: bad.share
  title: share
  category: a
  match: {line_share: {regex: "x", min: 2}}
"""


def test_errors_name_file_and_line_and_are_collected(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as info:
        RuleSet.load([path])
    msg = str(info.value)
    assert "6 problems" in msg
    for line, words in [
        (9, "unknown match operator 'contain'"),
        (16, "'(unclosed' is invalid"),
        (20, "field must be one of"),
        (22, "missing 'title'"),
        (28, "not Rust regex syntax"),
        (32, "min must be a number"),
    ]:
        assert f"{words}" in msg and f"{path}:{line}" in msg, (line, msg)
    assert "did you mean 'contains'?" in msg
    issues = RuleSet.validate([path])
    assert [i.source.line for i in issues] == [9, 16, 20, 22, 28, 32]


def test_without_collect_errors_the_first_problem_raises(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as info:
        RuleSet.load([path], collect_errors=False)
    assert info.value.source is not None
    assert (info.value.source.path, info.value.source.line) == (str(path), 9)
    assert str(info.value).endswith(f"in {path}:9")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "- id: a.b\n  title: [unclosed\n  category: a\n")
    with pytest.raises(ConfigError, match=rf"not valid YAML.* in {path}:\d+"):
        RuleSet.load([path])


def test_duplicate_ids_and_keys(tmp_path: Path) -> None:
    rule = "- id: dup.rule\n  title: t\n  category: a\n  match: {contains: [x]}\n"
    first = write(tmp_path, rule, "one.yaml")
    second = write(tmp_path, "\n" + rule + "  title: again\n", "two.yaml")
    issues = RuleSet.validate([first, second])
    msgs = {(i.source.path, i.source.line): i.message for i in issues}
    assert "appears twice" in msgs[(str(second), 6)]
    assert f"already defined in {first}:1" in msgs[(str(second), 2)]


def test_file_must_be_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\nid: x\n")
    with pytest.raises(ConfigError, match=rf"must be a YAML list of rules in {path}:2"):
        RuleSet.load([path])


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("{contains: []}", "non-empty list"),
        ("{contains: [1]}", "is not a non-empty string"),
        ("{min_len: -1}", "non-negative integer"),
        ("{any_of: [{}]}", "mapping of operators"),
        ("{}", "mapping of operators"),
        ("[contains]", "mapping of operators"),
    ],
)
def test_bad_operator_arguments(tmp_path: Path, match: str, expected: str) -> None:
    path = write(tmp_path, f"- id: a.b\n  title: t\n  category: a\n  match: {match}\n")
    with pytest.raises(ConfigError, match=expected) as info:
        RuleSet.load([path])
    assert info.value.source is not None and info.value.source.line == 4


def test_compiled_path_is_one_regex_per_contains_rule(builtin: RuleSet) -> None:
    # Vectorised form: a rule's phrases become a single alternation, not one expr each.
    expr = builtin.compile_polars()["elicitation.step_by_step"]
    assert str(expr).count("str.contains") == 1


def test_many_rows_agree(builtin: RuleSet) -> None:
    parts = [t for t, _ in TYPICAL[:-1]] + PLAIN_CHAT + ["", "STEP BY STEP 🙂"]
    texts = [" ".join(p) for p in itertools.islice(itertools.permutations(parts, 2), 400)]
    df = pl.DataFrame({"prompt": texts})
    compiled = df.select(builtin.compile_polars().values())
    for text, got in zip(texts, compiled.iter_rows(named=True), strict=True):
        assert got == builtin.evaluate_row({"prompt": text})


def test_apply_is_row_aligned_and_fills_missing(builtin: RuleSet) -> None:
    df = pl.DataFrame({"account": [1, 2, 3], "prompt": ["think step by step", None, "hi"]})
    out = builtin.apply(df, ["elicitation", "nosuch"], ids="ids")
    assert out.columns == ["elicitation", "nosuch", "ids"]
    assert out["elicitation"].to_list() == [True, False, False]
    assert out["nosuch"].to_list() == [False, False, False]
    assert out["ids"].to_list() == [["elicitation.step_by_step"], [], []]
    none = RuleSet(()).apply(df, ["elicitation"], ids="ids")
    assert none.height == 3 and none["ids"].to_list() == [[], [], []]


def test_literal_gate_and_bitmask_agree_with_the_reference(builtin: RuleSet) -> None:
    # Every gated rule's literals are necessary: gating changes cost, never results.
    texts = [
        "Please rate the answer from 1 to 10.",
        "Generate 20 questions about rivers.",
        "## Instruction:\nsum two numbers\n### Response:",
        "Input: 3\nOutput: 9",
        "def f(x):\n    return x",
        "$ docker run -it ubuntu",
        "1. a\n2. b\n3. c\n4. d\n5. e",
        "write at least 2000 words on tea",
        "hello there",
        "",
    ]
    df = pl.DataFrame({"prompt": texts})
    out = builtin.apply(df, builtin.categories, ids="ids", bits="bits")
    for i, text in enumerate(texts):
        want = {rid for rid, hit in builtin.evaluate_row({"prompt": text}).items() if hit}
        assert set(out["ids"][i]) == want, text
        assert {r.id for k, r in enumerate(builtin.rules) if out["bits"][i] >> k & 1} == want
    counts = out.select(**builtin.count_bits(pl.col("bits"))).row(0, named=True)
    assert counts == {r.id: sum(r.id in ids for ids in out["ids"]) for r in builtin.rules}
    assert all(r.match.literals() is None or r.match.literals() for r in builtin.rules)
