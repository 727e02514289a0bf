"""HuntConfig: one object, loadable from YAML, errors that name the key and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.errors import ConfigError
from distillguard.hunt.config import HuntConfig, LinkParams
from distillguard.policy import Policy


def test_defaults_in_one_place() -> None:
    c = HuntConfig()
    assert c.target_fpr == 0.001 and c.min_campaign == 5
    assert c.link.alpha == pytest.approx(0.01) and c.link.min_campaign == 5
    assert c.policy == Policy()
    assert c.signals["elicitation"] == {"sample": 8}


def test_alpha_and_min_campaign_are_derived() -> None:
    c = HuntConfig(target_fpr=0.0001, min_campaign=8)
    assert c.link.alpha == pytest.approx(0.001) and c.link.min_campaign == 8
    assert HuntConfig(target_fpr=0.02).link.alpha == 0.05  # capped


def test_roles_come_from_signal_declarations() -> None:
    p = LinkParams()
    assert "ua" in p.supporting and "model_adopt" in p.supporting
    assert "device" in p.bystander and "device" in p.identity and "phone_hash" in p.identity
    assert "tpl_head" not in p.supporting + p.bystander + p.identity


def test_load_yaml(tmp_path: Path) -> None:
    f = tmp_path / "hunt.yaml"
    f.write_text(
        "target_fpr: 0.0005\nscore: {cap: 2.5}\nlink: {high_quantile: 0.95}\n"
        "policy: {block_risk: 0.9}\nsignals: {capability: {sample: 4}}\n"
    )
    c = HuntConfig.load(f)
    assert c.target_fpr == 0.0005 and c.score.cap == 2.5 and c.link.high_quantile == 0.95
    assert c.policy.block_risk == 0.9
    assert c.signals["capability"] == {"sample": 4} and c.signals["elicitation"] == {"sample": 8}
    assert len(c.build_signals()) >= 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target_fpr": 2}, "target_fpr has value 2; expected a rate in \\(0, 1\\)"),
        ({"target_fpr": "low"}, "target_fpr has value 'low'; expected a number"),
        ({"fpr": 0.1}, "unknown key 'fpr'"),
        ({"link": {"high_quantile": 1.5}}, "link.high_quantile has value 1.5; expected a number in \\(0, 1\\)"),
        ({"link": {"alpha": 0.1}}, "link.alpha is not a link setting \\(set by target_fpr at the top level\\)"),
        ({"link": {"nope": 1}}, "link.nope is not a link setting"),
        ({"score": {"min_exchanges": -1}}, "score.min_exchanges has value -1"),
        ({"score": 3}, "score has value 3; expected a mapping"),
        ({"policy": {"block_risk": 0.2}}, "policy.block_risk has value 0.2"),
        ({"policy": {"member_action": "ban"}}, "policy.member_action has value 'ban'"),
        ({"policy": {"blockrisk": 0.9}}, "policy.blockrisk is not a policy setting"),
        ({"signals": {"nosuch": {}}}, "signals.nosuch is not a signal"),
        ({"signals": {"elicitation": {"smaple": 2}}}, "signals.elicitation.smaple is not a parameter of ElicitationSignal"),
    ],
)
def test_errors_name_key_and_value(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HuntConfig.from_dict(data, source="hunt.yaml")


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("target_fpr: 0.001\nlink: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:"):
        HuntConfig.load(f)
