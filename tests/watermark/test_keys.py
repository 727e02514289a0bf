import os
import stat

import pytest

from distillguard.errors import ConfigError
from distillguard.watermark.keys import KeyStore, derive


def test_derive_is_deterministic_and_separates_epochs_and_clusters():
    m = b"m" * 32
    assert derive(m, 0).secret == derive(m, 0).secret
    secrets = {derive(m, 0).secret, derive(m, 1).secret, derive(m, 0, "c1").secret, derive(b"n" * 32, 0).secret}
    assert len(secrets) == 4
    assert derive(m, 2, "c9").key_id == "e2/c9"


def test_repr_never_shows_the_secret():
    k = derive(b"m" * 32, 0)
    assert k.secret.hex() not in repr(k)
    assert "e0" in repr(k)


def test_rotation_keeps_old_epochs_for_detection():
    ks = KeyStore.generate(b"m" * 32)
    k0 = ks.current()
    k1 = ks.rotate()
    assert (k0.epoch, k1.epoch) == (0, 1)
    assert ks.current().secret == k1.secret
    assert [k.key_id for k in ks.all_keys()] == ["e0", "e1"]
    assert ks.epochs[0].retired is not None and ks.epochs[1].retired is None
    assert ks.key(0).secret == k0.secret
    with pytest.raises(ConfigError, match="no epoch 5"):
        ks.key(5)


def test_cluster_keys_are_registered_and_tried():
    ks = KeyStore.generate(b"m" * 32)
    kc = ks.current("cluster-7")
    assert kc.cluster == "cluster-7" and kc.secret != ks.current().secret
    assert [k.key_id for k in ks.all_keys()] == ["e0", "e0/cluster-7"]
    assert [k.key_id for k in ks.all_keys(clusters=False)] == ["e0"]


def test_save_load_round_trip_and_file_is_private(tmp_path):
    ks = KeyStore.generate()
    ks.current("c1")
    ks.rotate()
    p = tmp_path / "keys.json"
    ks.save(p)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    back = KeyStore.load(p)
    assert back.master == ks.master
    assert [k.secret for k in back.all_keys()] == [k.secret for k in ks.all_keys()]


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        KeyStore.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "epochs": []}')
    with pytest.raises(ConfigError, match="malformed"):
        KeyStore.load(bad)
    bad.write_text('{"format": 99}')
    with pytest.raises(ConfigError, match="format 99"):
        KeyStore.load(bad)
