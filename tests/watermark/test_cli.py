import json

import numpy as np
import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.watermark.greenlist import GreenList
from distillguard.watermark.keys import KeyStore

runner = CliRunner()
V = 2000


@pytest.fixture
def word_tokenizer(tmp_path):
    tk = pytest.importorskip("tokenizers")
    vocab = {f"w{i}": i for i in range(V)}
    tok = tk.Tokenizer(tk.models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = tk.pre_tokenizers.WhitespaceSplit()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


def marked_words(green, n, seed):
    rng = np.random.default_rng(seed)
    ids = [int(rng.integers(V))]
    for _ in range(n):
        ids.append(int(rng.choice(np.flatnonzero(green.mask(green.context_seed(np.array(ids)), V)))))
    return " ".join(f"w{i}" for i in ids)


def test_keys_init_rotate_list(tmp_path):
    store = tmp_path / "k.json"
    assert runner.invoke(app, ["watermark", "keys", "init", "--store", str(store)]).exit_code == 0
    again = runner.invoke(app, ["watermark", "keys", "init", "--store", str(store)])
    assert again.exit_code != 0
    r = runner.invoke(app, ["watermark", "keys", "rotate", "--store", str(store)])
    assert "e1" in r.output
    r = runner.invoke(app, ["watermark", "keys", "list", "--store", str(store)])
    assert "e0  retired" in r.output and "e1  signing" in r.output


def test_detect_on_text_files(tmp_path, word_tokenizer):
    store = tmp_path / "k.json"
    ks = KeyStore.generate()
    ks.rotate()  # text marked with the old epoch is still found
    ks.save(store)
    g = GreenList(ks.key(0))
    (tmp_path / "marked.txt").write_text(marked_words(g, 150, 0))
    (tmp_path / "clean.txt").write_text(" ".join(f"w{i}" for i in np.random.default_rng(1).integers(V, size=150)))
    out_json = tmp_path / "r.json"
    r = runner.invoke(app, ["watermark", "detect", str(tmp_path / "marked.txt"), str(tmp_path / "clean.txt"),
                            "--store", str(store), "--tokenizer", str(word_tokenizer), "--json", str(out_json)])
    assert r.exit_code == 0, r.output
    rows = json.loads(out_json.read_text())
    assert rows[0]["key_id"] == "e0" and rows[0]["p_value"] < 1e-20 and rows[0]["keys_tried"] == 2
    assert rows[1]["p_value"] > 1e-3
    assert "Watermarked" in rows[0]["verdict"] and "No evidence" in rows[1]["verdict"]
    assert "scored tokens" in r.output


def test_mark_text_by_policy_and_detect_lexical(tmp_path):
    store = tmp_path / "k.json"
    runner.invoke(app, ["watermark", "keys", "init", "--store", str(store)])
    text = " ".join(f"{p} often big and the idea is simple and also important." for p in
                    ["we", "they", "you", "it", "people", "he", "she", "cats", "dogs", "birds", "I", "one"])
    src = tmp_path / "in.txt"
    src.write_text(text)
    low = runner.invoke(app, ["watermark", "mark-text", str(src), "--store", str(store), "--risk", "0.1"])
    assert low.output == text
    high = runner.invoke(app, ["watermark", "mark-text", str(src), "--store", str(store), "--risk", "0.9", "--cluster", "c3"])
    assert high.exit_code == 0 and high.output != text
    assert [k.key_id for k in KeyStore.load(store).all_keys()] == ["e0", "e0/c3"]
    (tmp_path / "m.txt").write_text(high.output)
    r = runner.invoke(app, ["watermark", "detect", str(tmp_path / "m.txt"), "--store", str(store), "--scheme", "lexical",
                            "--json", str(tmp_path / "r.json")])
    row = json.loads((tmp_path / "r.json").read_text())[0]
    assert row["key_id"] == "e0/c3" and row["p_value"] < 1e-3, r.output


def test_greenlist_detect_needs_a_tokenizer(tmp_path):
    store = tmp_path / "k.json"
    KeyStore.generate().save(store)
    (tmp_path / "t.txt").write_text("hello")
    r = runner.invoke(app, ["watermark", "detect", str(tmp_path / "t.txt"), "--store", str(store)])
    assert r.exit_code != 0 and "--tokenizer" in str(r.exception)
