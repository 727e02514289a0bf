"""Rules as data: load YAML rule files, check them, compile them once.

A rule says which exchanges look like a certain kind of request (an elicitation
template, a coding task, ...). Rules are YAML so that analysts can write and share
them without touching code (DESIGN.md, "Rules are data, compiled once"). A rule file
is a list of rules::

    - id: elicitation.step_by_step        # unique across all loaded files
      title: asks for step-by-step reasoning
      category: elicitation               # free name; signals pick the ones they use
      field: prompt                       # prompt | system | response (default prompt)
      weight: 1.0                         # optional, default 1
      match:                              # one or more operators; several = all must hold
        contains: [step by step, show your reasoning]

Operators (``OPERATORS``, a name -> class map like pySigma's ``modifier_mapping``):

``contains``
    list of phrases; true if any occurs, case-insensitively (Unicode simple case folding).
``regex``
    list of patterns (Rust ``regex`` syntax, the common subset of Python ``re``: no
    look-around or back-references); true if any matches. Case-sensitive unless the
    pattern says ``(?i)``.
``min_len``
    the text has at least this many characters (code points, not bytes).
``line_share``
    ``{regex: ..., min: 0.7}``: at least that share of the text's lines match.
``any_of`` / ``all_of``
    lists of nested operator mappings.

Null or absent text never matches. Every problem is reported with ``file:line``;
with ``collect_errors`` all problems of all files are reported in one error.

Two evaluators ship: :meth:`RuleSet.compile_polars` (vectorised, one regex per
``contains`` list) and :meth:`RuleSet.evaluate_row` (plain Python, the reference
the compiled form is tested against).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import polars as pl
import yaml

from distillguard.errors import ConfigError, Issue, Location

__all__ = ["FIELDS", "OPERATORS", "Matcher", "Rule", "RuleSet", "builtin_paths"]

Field = Literal["prompt", "system", "response"]
FIELDS: tuple[Field, ...] = ("prompt", "system", "response")
BUILTIN_DIR = Path(__file__).parent / "rules"
# rules/ also holds other data (e.g. asn.yaml), so the rule files are named, not globbed.
BUILTIN_FILES = ("elicitation.yaml", "capability.yaml")
_RULE_KEYS = {"id", "title", "category", "field", "match", "weight", "description"}
_ID_RE = re.compile(r"^[a-z0-9_]+(?:\.[a-z0-9_]+)*$")


def builtin_paths() -> list[Path]:
    """The rule files shipped with distillguard, in a stable order."""
    return [BUILTIN_DIR / name for name in BUILTIN_FILES]


# -- YAML with line numbers ----------------------------------------------------------------
class _Map(dict[str, Any]):
    """A YAML mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _Seq(list[Any]):
    """A YAML sequence that remembers its line and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry 1-based line numbers."""

    duplicates: list[tuple[str, int]]


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for knode, vnode in node.value:
        key = loader.construct_object(knode, deep=True)
        line = knode.start_mark.line + 1
        if key in out:
            loader.duplicates.append((str(key), line))
        out[key] = loader.construct_object(vnode, deep=True)
        out.key_lines[str(key)] = line
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


# -- operators -----------------------------------------------------------------------------
class _Problems:
    """Collects issues while building one file; raises at once unless collecting."""

    def __init__(self, path: str, collect: bool) -> None:
        self.path, self.collect, self.issues = path, collect, list[Issue]()

    def add(self, message: str, line: int | None) -> None:
        issue = Issue(message, Location(self.path, line=line))
        if not self.collect:
            raise ConfigError(message, issue.source)
        self.issues.append(issue)


def _line(value: object, default: int) -> int:
    return getattr(value, "line", default)


class Matcher(ABC):
    """One match operator: a YAML name, a vectorised form and a reference form."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def parse(cls, arg: Any, line: int, problems: _Problems) -> Matcher | None:
        """Build from the YAML argument; report problems and return None when invalid."""

    @abstractmethod
    def polars(self, text: pl.Expr) -> pl.Expr:
        """Boolean expression over a String column; null may come out (callers fill)."""

    @abstractmethod
    def row(self, text: str) -> bool:
        """Reference evaluation on one non-null text."""

    def literals(self) -> frozenset[str] | None:
        """Lower-case phrases of which any match must contain one (ASCII case ignored),
        or None when no such set is known. Lets :meth:`RuleSet.apply` skip the text that
        contains none of them."""
        return None

    def phrases_found(self) -> frozenset[str]:
        """Lower-case phrases that :meth:`on_found` looks up in ``found`` rather than in the text."""
        return frozenset()

    def reads_text(self) -> bool:
        """Whether :meth:`on_found` still reads the text."""
        return True

    def on_found(self, text: pl.Expr, found: pl.Expr) -> pl.Expr:
        """:meth:`polars`, given ``found``: the phrases of :meth:`phrases_found` that occur in
        the text (found in one scan for a whole rule set, as :func:`phrase_keys` writes them)."""
        return self.polars(text)


def _strings(arg: Any, line: int, what: str, problems: _Problems) -> list[str] | None:
    if isinstance(arg, str):
        arg = [arg]
    if not isinstance(arg, list) or not arg:
        problems.add(f"{what} needs a non-empty list of strings, got {arg!r}", line)
        return None
    lines = getattr(arg, "item_lines", [line] * len(arg))
    ok = True
    for item, item_line in zip(arg, lines, strict=True):
        if not isinstance(item, str) or not item:
            problems.add(f"{what}: item {item!r} is not a non-empty string", item_line)
            ok = False
    return list(arg) if ok else None


_UNICODE_B = re.compile(r"(?<!\\)\\b")
_ASCII_B_PY = r"(?:(?<![0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<=[0-9A-Za-z_])(?![0-9A-Za-z_]))"


def polars_regex(pattern: str) -> str:
    """Word boundaries as ASCII ones: Unicode ``\\b`` makes Polars' regex engine ~30x slower.

    Letters outside ASCII next to a keyword therefore count as a boundary; the reference
    evaluator (:func:`python_regex`) does the same, so the two agree.
    """
    return _UNICODE_B.sub(lambda _: "(?-u:\\b)", pattern)


def python_regex(pattern: str) -> str:
    return _UNICODE_B.sub(lambda _: _ASCII_B_PY, pattern)


def _check_regex(pattern: str, line: int, problems: _Problems) -> re.Pattern[str] | None:
    try:
        compiled = re.compile(python_regex(pattern))
    except re.error as exc:
        problems.add(f"regex {pattern!r} is invalid: {exc}", line)
        return None
    try:  # the vectorised engine is Rust's regex crate: refuse what it cannot run
        pl.select(pl.lit("").str.contains(polars_regex(pattern)))
    except pl.exceptions.PolarsError:
        problems.add(
            f"regex {pattern!r} is valid Python but not Rust regex syntax "
            "(no look-around, no back-references)",
            line,
        )
        return None
    return compiled


@dataclass(frozen=True)
class Contains(Matcher):
    """Any of the phrases occurs, ignoring ASCII case.

    Compiled to one Aho-Corasick scan (``str.contains_any``): several times faster than a
    case-insensitive regex alternation. Case is folded for ASCII letters only, in both
    the compiled and the reference evaluator, so they agree on every text.
    """

    name: ClassVar[str] = "contains"
    phrases: tuple[str, ...]
    _patterns: tuple[re.Pattern[str], ...] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, arg: Any, line: int, problems: _Problems) -> Matcher | None:
        phrases = _strings(arg, line, "contains", problems)
        if phrases is None:
            return None
        pats = tuple(re.compile(re.escape(_ascii_lower(p))) for p in phrases)
        return cls(tuple(phrases), pats)

    def polars(self, text: pl.Expr) -> pl.Expr:
        return text.str.contains_any(list(self.phrases), ascii_case_insensitive=True)

    def row(self, text: str) -> bool:
        low = _ascii_lower(text)
        return any(p.search(low) for p in self._patterns)

    def literals(self) -> frozenset[str] | None:
        return frozenset(_ascii_lower(p) for p in self.phrases)

    def phrases_found(self) -> frozenset[str]:
        return frozenset(_ascii_lower(p) for p in self.phrases)

    def reads_text(self) -> bool:
        return False

    def on_found(self, text: pl.Expr, found: pl.Expr) -> pl.Expr:
        return found.list.eval(pl.element().is_in(phrase_keys(self.phrases_found()))).list.any()


def phrase_keys(phrases: Iterable[str]) -> list[str]:
    """Phrases as ``found`` holds them: lower-cased by Polars, as the found text is, so that
    both sides fold case the same way."""
    return pl.Series(sorted(phrases), dtype=pl.String).str.to_lowercase().unique().sort().to_list()


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


@dataclass(frozen=True)
class Regex(Matcher):
    """Any of the patterns matches somewhere in the text."""

    name: ClassVar[str] = "regex"
    patterns: tuple[str, ...]
    _compiled: tuple[re.Pattern[str], ...] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, arg: Any, line: int, problems: _Problems) -> Matcher | None:
        pats = _strings(arg, line, "regex", problems)
        if pats is None:
            return None
        lines = getattr(arg, "item_lines", [line] * len(pats))
        compiled = [_check_regex(p, ln, problems) for p, ln in zip(pats, lines, strict=True)]
        if any(c is None for c in compiled):
            return None
        return cls(tuple(pats), tuple(c for c in compiled if c is not None))

    def polars(self, text: pl.Expr) -> pl.Expr:
        return text.str.contains("|".join(f"(?:{polars_regex(p)})" for p in self.patterns))

    def row(self, text: str) -> bool:
        return any(p.search(text) for p in self._compiled)


@dataclass(frozen=True)
class MinLen(Matcher):
    """The text has at least ``n`` characters."""

    name: ClassVar[str] = "min_len"
    n: int

    @classmethod
    def parse(cls, arg: Any, line: int, problems: _Problems) -> Matcher | None:
        if isinstance(arg, bool) or not isinstance(arg, int) or arg < 0:
            problems.add(f"min_len needs a non-negative integer, got {arg!r}", line)
            return None
        return cls(arg)

    def polars(self, text: pl.Expr) -> pl.Expr:
        return text.str.len_chars() >= self.n

    def row(self, text: str) -> bool:
        return len(text) >= self.n


@dataclass(frozen=True)
class LineShare(Matcher):
    """At least ``min`` of the text's lines (split on newline) match ``regex``."""

    name: ClassVar[str] = "line_share"
    pattern: str
    min: float
    _compiled: re.Pattern[str] = field(compare=False, repr=False)

    @classmethod
    def parse(cls, arg: Any, line: int, problems: _Problems) -> Matcher | None:
        if not isinstance(arg, dict) or set(arg) != {"regex", "min"}:
            problems.add(f"line_share needs exactly {{regex: ..., min: 0..1}}, got {arg!r}", line)
            return None
        lo = arg["min"]
        if isinstance(lo, bool) or not isinstance(lo, int | float) or not 0 < lo <= 1:
            problems.add(f"line_share: min must be a number in (0, 1], got {lo!r}", line)
            return None
        pat = arg["regex"]
        if not isinstance(pat, str):
            problems.add(f"line_share: regex must be a string, got {pat!r}", line)
            return None
        compiled = _check_regex(pat, line, problems)
        return None if compiled is None else cls(pat, float(lo), compiled)

    def polars(self, text: pl.Expr) -> pl.Expr:
        hits = pl.element().str.contains(polars_regex(self.pattern)).cast(pl.Float64)
        return text.str.split("\n").list.eval(hits).list.mean() >= self.min

    def row(self, text: str) -> bool:
        lines = text.split("\n")
        return sum(bool(self._compiled.search(x)) for x in lines) / len(lines) >= self.min


@dataclass(frozen=True)
class _Nested(Matcher):
    parts: tuple[Matcher, ...]

    @classmethod
    def parse(cls, arg: Any, line: int, problems: _Problems) -> Matcher | None:
        if not isinstance(arg, list) or not arg:
            problems.add(f"{cls.name} needs a non-empty list of operator mappings", line)
            return None
        lines = getattr(arg, "item_lines", [line] * len(arg))
        parts = [_parse_match(a, ln, problems) for a, ln in zip(arg, lines, strict=True)]
        if any(p is None for p in parts):
            return None
        return cls(tuple(p for p in parts if p is not None))

    def _leaves(self, text: pl.Expr) -> list[pl.Expr]:
        return [p.polars(text).fill_null(False) for p in self.parts]

    def phrases_found(self) -> frozenset[str]:
        return frozenset().union(*(p.phrases_found() for p in self.parts))

    def reads_text(self) -> bool:
        return any(p.reads_text() for p in self.parts)

    def _found_leaves(self, text: pl.Expr, found: pl.Expr) -> list[pl.Expr]:
        return [p.on_found(text, found).fill_null(False) for p in self.parts]


@dataclass(frozen=True)
class AnyOf(_Nested):
    """At least one nested mapping matches."""

    name: ClassVar[str] = "any_of"

    def polars(self, text: pl.Expr) -> pl.Expr:
        return pl.any_horizontal(self._leaves(text))

    def on_found(self, text: pl.Expr, found: pl.Expr) -> pl.Expr:
        return pl.any_horizontal(self._found_leaves(text, found))

    def row(self, text: str) -> bool:
        return any(p.row(text) for p in self.parts)

    def literals(self) -> frozenset[str] | None:
        sets = [p.literals() for p in self.parts]
        return None if any(x is None for x in sets) else frozenset().union(*(x for x in sets if x is not None))


@dataclass(frozen=True)
class AllOf(_Nested):
    """Every nested mapping matches."""

    name: ClassVar[str] = "all_of"

    def polars(self, text: pl.Expr) -> pl.Expr:
        return pl.all_horizontal(self._leaves(text))

    def on_found(self, text: pl.Expr, found: pl.Expr) -> pl.Expr:
        return pl.all_horizontal(self._found_leaves(text, found))

    def row(self, text: str) -> bool:
        return all(p.row(text) for p in self.parts)

    def literals(self) -> frozenset[str] | None:
        # Every part must hold, so any part's set is necessary: the smallest filters best.
        sets = [x for x in (p.literals() for p in self.parts) if x is not None]
        return min(sets, key=lambda x: (len(x), sorted(x))) if sets else None


OPERATORS: dict[str, type[Matcher]] = {
    m.name: m for m in (Contains, Regex, MinLen, LineShare, AnyOf, AllOf)
}


def _parse_match(arg: Any, line: int, problems: _Problems) -> Matcher | None:
    """A mapping of operators; several operators in one mapping must all hold."""
    if not isinstance(arg, dict) or not arg:
        problems.add(f"match needs a mapping of operators {sorted(OPERATORS)}, got {arg!r}", line)
        return None
    line = _line(arg, line)
    key_lines: dict[str, int] = getattr(arg, "key_lines", {})
    parts: list[Matcher] = []
    ok = True
    for op, val in arg.items():
        op_line = key_lines.get(str(op), line)
        cls = OPERATORS.get(str(op))
        if cls is None:
            hint = difflib.get_close_matches(str(op), OPERATORS, n=1)
            did = f"; did you mean {hint[0]!r}?" if hint else ""
            problems.add(
                f"unknown match operator {op!r} (known: {sorted(OPERATORS)}){did}", op_line
            )
            ok = False
            continue
        m = cls.parse(val, _line(val, op_line), problems)
        ok = ok and m is not None
        if m is not None:
            parts.append(m)
    if not ok:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


# -- rules ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One rule: which text field, which category, how to match it, and where it came from."""

    id: str
    title: str
    category: str
    match: Matcher
    field: Field = "prompt"
    weight: float = 1.0
    source: Location | None = None

    def polars(self) -> pl.Expr:
        """Boolean expression over the batch; null or absent text gives False."""
        text = pl.col(self.field).cast(pl.String)
        return self.match.polars(text).fill_null(False).alias(self.id)

    def evaluate(self, row: Mapping[str, Any]) -> bool:
        """Reference evaluation on one row (a dict of column values)."""
        text = row.get(self.field)
        return isinstance(text, str) and self.match.row(text)


def _parse_rule(raw: Any, line: int, problems: _Problems) -> Rule | None:
    if not isinstance(raw, dict):
        problems.add(f"a rule must be a mapping, got {raw!r}", line)
        return None
    line = _line(raw, line)
    kl: dict[str, int] = getattr(raw, "key_lines", {})
    bad = False
    for key in sorted(set(map(str, raw)) - _RULE_KEYS):
        hint = difflib.get_close_matches(key, _RULE_KEYS, n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else ""
        problems.add(f"unknown rule key {key!r} (known: {sorted(_RULE_KEYS)}){did}", kl.get(key))
        bad = True
    for key in ("id", "title", "category", "match"):
        if key not in raw:
            problems.add(f"rule {raw.get('id', '?')!r} is missing {key!r}", line)
            bad = True
    for key in ("id", "title", "category"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            problems.add(f"{key} must be a non-empty string, got {raw[key]!r}", kl.get(key))
            bad = True
    rid = raw.get("id")
    if isinstance(rid, str) and rid and not _ID_RE.match(rid):
        problems.add(
            f"id {rid!r} must be lower-case dotted words like 'elicitation.rubric'", kl.get("id")
        )
        bad = True
    fld = raw.get("field", "prompt")
    if fld not in FIELDS:
        problems.add(f"field must be one of {list(FIELDS)}, got {fld!r}", kl.get("field"))
        bad = True
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        problems.add(f"weight must be a positive number, got {weight!r}", kl.get("weight"))
        bad = True
    match = None
    if "match" in raw:
        match = _parse_match(raw["match"], _line(raw["match"], kl.get("match", line)), problems)
    if bad or match is None:
        return None
    return Rule(
        id=raw["id"],
        title=raw["title"],
        category=raw["category"],
        match=match,
        field=cast(Field, fld),
        weight=float(weight),
        source=Location(problems.path, line=line),
    )


def _parse_file(path: Path, problems: _Problems) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(f"cannot read rule file: {exc}", None)
        return []
    loader = _Loader(text)
    loader.duplicates = []
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.add(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None
        )
        return []
    finally:
        loader.dispose()
    for key, dline in loader.duplicates:
        problems.add(f"key {key!r} appears twice in one mapping", dline)
    if doc is None:
        return []
    if not isinstance(doc, list):
        problems.add("a rule file must be a YAML list of rules", _line(doc, 1))
        return []
    lines = getattr(doc, "item_lines", [1] * len(doc))
    rules = [_parse_rule(r, ln, problems) for r, ln in zip(doc, lines, strict=True)]
    return [r for r in rules if r is not None]


@dataclass(frozen=True)
class RuleSet:
    """Rules loaded from YAML files, with their vectorised and reference evaluators.

    Parameters
    ----------
    rules
        The rules, in file order. Usually built with :meth:`load`.

    Examples
    --------
    >>> import polars as pl
    >>> rs = RuleSet.load()
    >>> df = pl.DataFrame({"prompt": ["Think step by step.", "hi there", None]})
    >>> df.select(rs.compile_polars()["elicitation.step_by_step"]).to_series().to_list()
    [True, False, False]
    >>> rs.evaluate_row({"prompt": "Think STEP BY STEP."})["elicitation.step_by_step"]
    True
    """

    rules: tuple[Rule, ...]
    _by_id: dict[str, Rule] = field(init=False, repr=False, compare=False)
    _compiled: dict[str, pl.Expr] = field(init=False, repr=False, compare=False)

    def digest(self) -> str:
        """A short hash of what the rules match: states built with other rules do not merge."""
        text = "\n".join(f"{r.id}|{r.category}|{r.field}|{r.weight}|{r.match!r}" for r in self.rules)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def builtin(cls) -> RuleSet:
        """The built-in rules, loaded once per process."""
        return _builtin()

    @classmethod
    def load(
        cls, paths: Sequence[Path | str] | None = None, collect_errors: bool = True
    ) -> RuleSet:
        """Load and check rule files.

        Parameters
        ----------
        paths
            Rule files; None means the built-in ones (:func:`builtin_paths`). To add
            your own rules to the built-in ones pass ``[*builtin_paths(), mine]``.
        collect_errors
            Check everything and raise one :class:`ConfigError` listing every problem
            (each with ``file:line``); if False, raise at the first problem.

        Raises
        ------
        ConfigError
            On any invalid file, rule, operator, regex, or a rule id used twice.
        """
        rules, issues = cls._read(paths, collect_errors)
        if issues:
            if len(issues) == 1:
                raise ConfigError(issues[0].message, issues[0].source)
            listing = "\n".join(f"  - {i.message} in {i.source}" for i in issues)
            raise ConfigError(f"{len(issues)} problems in rule files:\n{listing}")
        return cls(tuple(rules))

    @classmethod
    def validate(cls, paths: Sequence[Path | str] | None = None) -> list[Issue]:
        """Every problem in the files, without raising (for a ``rules check`` command)."""
        return cls._read(paths, True)[1]

    @classmethod
    def _read(
        cls, paths: Sequence[Path | str] | None, collect: bool
    ) -> tuple[list[Rule], list[Issue]]:
        files = builtin_paths() if paths is None else [Path(p) for p in paths]
        rules: list[Rule] = []
        issues: list[Issue] = []
        seen: dict[str, Rule] = {}
        for path in files:
            problems = _Problems(str(path), collect)
            for rule in _parse_file(path, problems):
                first = seen.get(rule.id)
                if first is not None:
                    problems.add(
                        f"rule id {rule.id!r} already defined in {first.source}",
                        rule.source.line if rule.source else None,
                    )
                    continue
                seen[rule.id] = rule
                rules.append(rule)
            issues += problems.issues
        return rules, issues

    # -- views -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rules)

    def __getitem__(self, rule_id: str) -> Rule:
        return self._by_id[rule_id]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {r.id: r for r in self.rules})
        # Compiled once per rule set; Polars expressions are immutable, so sharing is safe.
        object.__setattr__(self, "_compiled", {r.id: r.polars() for r in self.rules})

    @property
    def categories(self) -> list[str]:
        """Category names in first-seen order."""
        return list(dict.fromkeys(r.category for r in self.rules))

    @property
    def fields(self) -> list[Field]:
        """Text columns the rules read."""
        return list(dict.fromkeys(r.field for r in self.rules))

    def select(self, categories: Iterable[str]) -> RuleSet:
        """The rules of the given categories only."""
        keep = set(categories)
        return RuleSet(tuple(r for r in self.rules if r.category in keep))

    # -- evaluators ------------------------------------------------------------------------
    def compile_polars(self) -> dict[str, pl.Expr]:
        """Rule id -> boolean Polars expression over the batch columns (null text -> False).

        The batch must have every column in :attr:`fields` (absent ones as null columns).
        """
        return dict(self._compiled)

    def evaluate_row(self, row: Mapping[str, Any]) -> dict[str, bool]:
        """Reference evaluator: rule id -> match, one row in plain Python."""
        return {r.id: r.evaluate(row) for r in self.rules}

    def category_exprs(self, flags: Mapping[str, pl.Expr] | None = None) -> dict[str, pl.Expr]:
        """Category -> boolean expression: does any rule of that category match.

        ``flags`` (rule id -> boolean expression) defaults to :meth:`compile_polars`;
        pass columns already computed to avoid evaluating a rule twice.
        """
        flags = self.compile_polars() if flags is None else flags
        out: dict[str, list[pl.Expr]] = {}
        for r in self.rules:
            out.setdefault(r.category, []).append(flags[r.id])
        return {c: pl.any_horizontal(e).alias(c) for c, e in out.items()}

    def matched_ids(self, name: str, flags: Mapping[str, pl.Expr] | None = None) -> pl.Expr:
        """The ids of every rule that matches the row, as one List[String] column."""
        if not self.rules:
            return pl.lit([], dtype=pl.List(pl.String)).alias(name)
        flags = self.compile_polars() if flags is None else flags
        hits = [pl.when(flags[r.id]).then(pl.lit(r.id)) for r in self.rules]
        return pl.concat_list(hits).list.drop_nulls().alias(name)

    def apply(
        self,
        frame: pl.DataFrame,
        categories: Sequence[str],
        ids: str | None = None,
        bits: str | None = None,
    ) -> pl.DataFrame:
        """Row-aligned flags: one boolean column per category, plus the matched rules.

        Each rule is evaluated once. Text fields absent from ``frame`` count as null, and
        a category without rules gives an all-False column.

        Parameters
        ----------
        frame
            The exchange batch.
        categories
            Output columns, one per category name, in this order.
        ids
            Name of a List[String] column of the matching rule ids; None to skip it.
        bits
            Name of an Int64 column with bit ``i`` set when ``rules[i]`` matches: the
            cheap form for counting (see :meth:`count_bits`); at most 63 rules.
        """
        tmp = {r.id: f"__rule__{r.id}" for r in self.rules}
        missing = [pl.lit(None, pl.String).alias(f) for f in self.fields if f not in frame.columns]
        staged = self._evaluate(frame.with_columns(missing), tmp)
        cols = {rid: pl.col(col) for rid, col in tmp.items()}
        cats = self.category_exprs(cols)
        exprs = [cats.get(c, pl.lit(False)).alias(c) for c in categories]
        if bits is not None:
            if len(self.rules) > 63:
                raise ConfigError(f"a rule bitmask holds at most 63 rules, this set has {len(self.rules)}")
            mask = pl.sum_horizontal(c.cast(pl.Int64) * (1 << i) for i, c in enumerate(cols.values()))
            exprs.append((mask if self.rules else pl.lit(0, pl.Int64)).alias(bits))
        out = staged.with_columns(exprs)
        names = [*categories, *([bits] if bits is not None else [])]
        if ids is None:
            return out.select(names)
        if not 0 < len(self.rules) <= 63:
            return out.with_columns(self.matched_ids(ids, cols)).select(*names, ids)
        # Few distinct combinations of rules match in practice: build each id list once
        # and join it on a bitmask (a per-row list built by expressions costs ~5 us/row).
        key = pl.sum_horizontal(c.cast(pl.Int64) * (1 << i) for i, c in enumerate(cols.values()))
        out = out.with_columns(key.alias("__bits__"))
        combos = out.select(pl.col("__bits__").unique()).to_series().to_list()
        rule_ids = list(cols)
        lists = pl.DataFrame(
            {"__bits__": combos, ids: [[r for i, r in enumerate(rule_ids) if b >> i & 1] for b in combos]},
            schema={"__bits__": pl.Int64, ids: pl.List(pl.String)},
        )
        return out.join(lists, on="__bits__", how="left", maintain_order="left").select(*names, ids)

    def count_bits(self, bits: pl.Expr) -> dict[str, pl.Expr]:
        """Rule id -> aggregation counting the rows whose ``bits`` (from :meth:`apply`) has it."""
        return {r.id: ((bits & (1 << i)) != 0).sum() for i, r in enumerate(self.rules)}

    def _evaluate(self, frame: pl.DataFrame, names: Mapping[str, str]) -> pl.DataFrame:
        """``frame`` plus one boolean column per rule (``names``: rule id -> column).

        Rules with a literal set (:meth:`Matcher.literals`) run only on the rows whose text
        contains one of the literals of their field: one case-insensitive Aho-Corasick scan
        for all of them. On those rows every phrase of every ``contains`` is then found in
        one more scan, a ``contains`` looks its phrases up in what was found instead of
        scanning the text again, and a rule that still reads the text (a regex, a length)
        runs only where one of its own literals was found. On real prompts about half the
        rows hold some rule's literals but few hold a given rule's, so two scans replace one
        per rule.
        """
        gated: dict[str, list[Rule]] = {}
        open_rules: list[Rule] = []
        for r in self.rules:
            (open_rules if r.match.literals() is None else gated.setdefault(r.field, [])).append(r)
        out = frame.with_columns(self._compiled[r.id].alias(names[r.id]) for r in open_rules)
        for fld, rules in gated.items():
            phrases = sorted(frozenset().union(*(r.match.phrases_found() for r in rules)))
            if len(phrase_keys(phrases)) < len(phrases):  # phrases apart only in non-ASCII case
                out = out.with_columns(self._compiled[r.id].alias(names[r.id]) for r in rules)
                continue
            text = pl.col(fld).cast(pl.String)
            some = frame.select(text.str.contains_any(phrases, ascii_case_insensitive=True).fill_null(False))
            held = some.to_series().arg_true()
            found = text.str.extract_many(phrases, ascii_case_insensitive=True, overlapping=True)
            scanned = frame[held].select(text, __found__=found.list.eval(pl.element().str.to_lowercase()))
            f = pl.col("__found__")
            cols = []
            for r in rules:
                expr = r.match.on_found(text, f).fill_null(False)
                rows, on = held, scanned
                if r.match.reads_text():  # only where one of its own literals is
                    keys = phrase_keys(r.match.literals() or ())
                    mine = scanned.select(f.list.eval(pl.element().is_in(keys)).list.any()).to_series().arg_true()
                    rows, on = held.gather(mine), scanned[mine]
                full = pl.Series(names[r.id], [False] * frame.height, dtype=pl.Boolean)
                cols.append(full.scatter(rows, on.select(expr).to_series()) if len(rows) else full)
            out = out.with_columns(cols)
        return out


@functools.cache
def _builtin() -> RuleSet:
    return RuleSet.load()
