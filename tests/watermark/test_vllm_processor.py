from dataclasses import dataclass, field
from enum import Enum, auto

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from distillguard.errors import ConfigError  # noqa: E402
from distillguard.watermark.greenlist import GreenList  # noqa: E402
from distillguard.watermark.keys import KeyStore  # noqa: E402
from distillguard.watermark.vllm_processor import GreenListBatchState, state_from_env  # noqa: E402


class Move(Enum):  # same member names as vLLM's MoveDirectionality
    UNIDIRECTIONAL = auto()
    SWAP = auto()


@dataclass
class Params:
    extra_args: dict = field(default_factory=dict)


@dataclass
class Update:  # the fields of vLLM's BatchUpdate
    batch_size: int
    removed: list = field(default_factory=list)
    added: list = field(default_factory=list)
    moved: list = field(default_factory=list)


def bias_for(store, cluster, last, vocab, delta=1.0):
    g = GreenList(store.current(cluster))
    return delta * torch.from_numpy(g.mask(g.context_seed(np.array([last])), vocab)).float()


def test_rows_follow_adds_moves_swaps_and_removals():
    store = KeyStore.generate(b"m" * 32)
    st = GreenListBatchState(store)
    out0, out1, out2 = [5], [7, 8], [9]
    st.update(Update(3, added=[(0, Params(), [1, 2], out0), (1, Params({"distillguard_cluster": "c7"}), [3], out1),
                               (2, Params({"distillguard_watermark": False}), [4], out2)]))
    logits = st.apply(torch.zeros(3, 300))
    assert torch.equal(logits[0], bias_for(store, None, 5, 300))
    assert torch.equal(logits[1], bias_for(store, "c7", 8, 300))
    assert torch.equal(logits[2], torch.zeros(300))  # policy: this request is not marked
    out0.append(11)  # vLLM appends to the same list: the processor sees the new token
    st.update(Update(3, moved=[(0, 1, Move.SWAP)]))
    logits = st.apply(torch.zeros(3, 300))
    assert torch.equal(logits[1], bias_for(store, None, 11, 300))
    assert torch.equal(logits[0], bias_for(store, "c7", 8, 300))
    st.update(Update(2, removed=[1], moved=[(0, 1, Move.UNIDIRECTIONAL)]))
    assert set(st.rows) == {1}
    st.update(None)
    assert set(st.rows) == {1}


def test_state_from_env(tmp_path, monkeypatch):
    monkeypatch.delenv("DISTILLGUARD_WATERMARK_STORE", raising=False)
    with pytest.raises(ConfigError, match="DISTILLGUARD_WATERMARK_STORE"):
        state_from_env()
    KeyStore.generate().save(tmp_path / "k.json")
    monkeypatch.setenv("DISTILLGUARD_WATERMARK_STORE", str(tmp_path / "k.json"))
    monkeypatch.setenv("DISTILLGUARD_WATERMARK_DELTA", "2.5")
    assert state_from_env().delta == 2.5


def test_vllm_class_needs_vllm():
    pytest.importorskip("vllm", reason="vLLM not installed")  # runs where vLLM is installed
    from distillguard.watermark.vllm_processor import vllm_logits_processor_class

    assert vllm_logits_processor_class().is_argmax_invariant  # builds against the real base class
