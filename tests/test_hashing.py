"""The hashing helpers keep their values: each is a cache key, fingerprint, row id or seed that
files written by earlier runs hold, so each is pinned to a literal here."""

from __future__ import annotations

from pathlib import Path

from stylized_dpo import hashing
from stylized_dpo.records import PreferencePair


def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("héllo\n")
    (tmp_path / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)  # > one 1 MiB block
    return tmp_path, tmp_path / "a.txt", tmp_path / "sub" / "b.bin"


def test_file_digests(tmp_path):
    root, a, b = files(tmp_path)
    assert (
        hashing.sha256_file(b) == "7d471e4af16db5a30ce10aebbc29f5178b2edbad6c7dc2e8ff8ee6e4848a726f"
    )
    assert hashing.files_digest(root, a) == "a8e56320648a1fd2"
    assert hashing.concat_digest([a, b], "sha1") == "ed814cb8af7cc6c314758c763370dc42087be529"
    assert (
        hashing.concat_digest([a, b])
        == "80a57de4f03934567ae34949723524975fbefffd7f5371666179b65fa1bd4924"
    )
    assert hashing.snapshot_commit(["a 1", "b 2"]) == "420351b2e147ec9242a928b4699ae037b43895fb"


def test_text_and_config_keys():
    parts = ("dpo", {"b": 1, "a": (0.9, 0.95)}, Path("x"))
    assert hashing.config_fingerprint(*parts) == "cfdb28625cf8bb60"
    assert hashing.stable_id("pref", "Où?") == "76d29013203f3456"
    assert hashing.stable_id("", "u", "a") == "1e0808cb50d469f8"
    assert hashing.text_hash("tmpl é") == "c068519d5c303940"
    assert (
        hashing.text_hash("prompt é", 64)
        == "9693a36fb4a73755ce5cd8807b7fb9804ea668a887fb01480337fb1d0c31690a"
    )
    assert (
        hashing.cache_key("judge", "m", "t", "p é")
        == "e8f1803a977e8e7578094ab7addbafa9ae7a47523e2bd5ffa4a3bf29e93b39d7"
    )
    assert hashing.sequence_key([1, 2, 3], [4, 5]) == "d2ef0742478deb39993f4cda5b285152"
    assert hashing.json_digest_int({"b": [1, "é"], "a": 2}) == 32399607865701


def test_style_row_keys_and_seeds():
    class Style:
        prompt_hash = hashing.style_prompt_hash("warm", "sys é", "Rewrite {prompt} {answer} é")

    assert Style.prompt_hash == "d3a2c4c3f37ec7a9"
    pair = PreferencePair(prompt_id="p1", prompt="Why é?", chosen="Because.", rejected="No.")
    key = hashing.row_key(pair, Style(), {"backend": "rules", "model": None, "t": 0.7})
    assert key == "0ae6bd41b55b80c8ac7be024"
    assert hashing.row_seed(5, key) == 187893904
    assert hashing.derive_seed(3, "a", "b") == 152003343
    assert hashing.pick_index("warm/open/k1", 4) == 3
    assert hashing.pick_index("k", 7) == 6


def test_seeded_rng():
    draws = hashing.seeded_rng(7, "sft", "helpfulness").integers(0, 2**31, 3).tolist()
    assert draws == [1569957435, 1903345623, 1274508013]
