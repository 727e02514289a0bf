"""Column mappings and thresholds: valid YAML loads, every mistake names file, line, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.config import ColumnMapping
from distillguard.errors import ConfigError

GOOD = """\
exchanges: {request_id: req_id, ts: created, account_id: org, input_tokens: usage_in, output_tokens: usage_out}
accounts: {account_id: org, created_at: signup_time}
ts_unit: ms
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mapping.yaml"
    p.write_text(text)
    return p


def test_load_good_mapping(tmp_path: Path) -> None:
    m = ColumnMapping.load(write(tmp_path, GOOD))
    assert m.exchanges["ts"] == "created"
    assert m.renames("accounts") == {"org": "account_id", "signup_time": "created_at"}
    assert m.labels == {} and m.ts_unit == "ms" and not m.is_identity
    assert m == ColumnMapping.coerce(str(tmp_path / "mapping.yaml"))
    assert hash(m) == hash(ColumnMapping.load(tmp_path / "mapping.yaml"))
    assert ColumnMapping.coerce(None).is_identity
    assert ColumnMapping.load(write(tmp_path, "")).is_identity
    with pytest.raises(TypeError):
        m.exchanges["ts"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("exchanges: {ts: created}\nexchange: {}\n", 2, "unknown key 'exchange'"),
        (
            "exchanges:\n  ts: created\n  tokens_out: out\n",
            3,
            "exchanges.tokens_out is not a column",
        ),
        ("exchanges:\n  ts: 12\n", 2, "exchanges.ts has value 12"),
        ("exchanges:\n  ts: created\n  request_id: created\n", 3, "already used for exchanges.ts"),
        ("accounts: [a, b]\n", 1, "'accounts' must map spec columns"),
        ("ts_unit: hours\n", 1, "ts_unit has value 'hours'"),
        ("exchanges: {ts: created\n", 2, "invalid YAML"),
    ],
)
def test_mapping_errors_say_where(tmp_path: Path, text: str, line: int, needle: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=needle) as exc:
        ColumnMapping.load(p)
    assert exc.value.source is not None
    assert exc.value.source.path == str(p) and exc.value.source.line == line
    assert f"mapping.yaml:{line}" in str(exc.value)


def test_mapping_missing_file_and_bad_objects(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read column mapping"):
        ColumnMapping.load(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="must be a mapping of tables"):
        ColumnMapping.from_dict(["a"])
    with pytest.raises(ConfigError, match="not a column"):
        ColumnMapping(accounts={"nope": "x"})
