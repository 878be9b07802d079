"""Nothing is loaded unverified: a checkpoint whose files (or manifest) changed since it was written is refused
before megatron unpickles anything of it, naming the file."""
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model import checkpoint
from model.integrity import IntegrityError, read_verified
from tests.model.test_training import _config, _run, shards  # noqa: F401  (fixture)


class _Plant:
    """Unpickling this creates a file: proof that a loader ran attacker-controlled code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _init_from(cfg: Path, source: Path, manifest_sha: str) -> Path:
    data = json.loads(cfg.read_text())
    data.update(init_from=str(source), init_from_manifest=manifest_sha)
    cfg.write_text(json.dumps(data))
    return cfg


def test_tampered_checkpoints_are_refused_before_anything_is_unpickled(tmp_path, shards):  # noqa: F811
    _run(_config(tmp_path, "base", shards, steps=2), 1)
    ckpt = tmp_path / "base" / "iter_0000002"
    recorded = checkpoint.manifest_sha256(ckpt)
    checkpoint.check_before_load(ckpt, recorded)  # intact: accepted

    # one byte of a data file
    bad = tmp_path / "flipped"
    shutil.copytree(ckpt, bad)
    shard = next(p for p in sorted(bad.iterdir()) if p.suffix == ".distcp")
    blob = bytearray(shard.read_bytes())
    blob[len(blob) // 2] ^= 1
    shard.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match=shard.name):
        checkpoint.check_before_load(bad, recorded)

    # a file the manifest does not list
    extra = tmp_path / "extra"
    shutil.copytree(ckpt, extra)
    (extra / "payload.pt").write_bytes(b"x")
    with pytest.raises(IntegrityError, match="payload.pt is not in the manifest"):
        checkpoint.check_before_load(extra, recorded)

    # a malicious pickle in the metadata, with the manifest rewritten to match: only the recorded sha catches it
    pwned = tmp_path / "pwned"
    evil = tmp_path / "evil"
    shutil.copytree(ckpt, evil)
    (evil / ".metadata").write_bytes(pickle.dumps(_Plant(str(pwned))))
    (evil / checkpoint.MANIFEST).unlink()
    checkpoint.write_manifest(evil)
    assert checkpoint.verify(evil) is None  # self-consistent: the manifest beside it cannot be the anchor
    with pytest.raises(IntegrityError, match=checkpoint.MANIFEST):
        checkpoint.check_before_load(evil, recorded)

    # the same through a training process asked to start from it (what specialization does)
    cfg = _init_from(_config(tmp_path, "special", shards, steps=2), evil, recorded)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                           "-m", "model.train", "--config", str(cfg)], capture_output=True, text=True, timeout=300)
    assert not pwned.exists(), "the checkpoint's pickle ran"
    assert proc.returncode != 0 and "refused" in proc.stdout + proc.stderr


def test_tokenizer_bytes_are_checked_before_parsing(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {}}')
    import hashlib

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_verified(path, sha, "tokenizer") == path.read_bytes()
    path.write_text('{"model": {"x": 1}}')
    with pytest.raises(IntegrityError, match=f"tokenizer {path} refused"):
        read_verified(path, sha, "tokenizer")
