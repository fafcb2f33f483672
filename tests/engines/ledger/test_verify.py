"""The standalone auditor verifier, run as a separate process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tocsin.engines.ledger import merkle as M
from tocsin.engines.ledger import note as N
from tocsin.engines.ledger.checkpoint import Checkpoint, sign_checkpoint
from tocsin.engines.ledger.commitment import canonical_json, commit, new_salt
from tocsin.engines.ledger.log import Log
from tocsin.engines.ledger.verify import Failure, make_proof_bundle, verify_bundle
from tocsin.engines.ledger.witness import cosign

ORIGIN = "tocsin.example/ledger"
VERIFY = str(Path(M.__file__).with_name("verify.py"))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    log_key = N.Signer.generate(ORIGIN)
    witnesses = [N.Signer.generate(f"w{i}.example", N.SIG_COSIGNATURE_V1) for i in range(3)]
    records = [{"event": "read", "case": i, "by": f"officer {i % 7}"} for i in range(300)]
    salts = [new_salt() for _ in records]
    leaves = [commit(s, canonical_json(r)) for s, r in zip(salts, records)]
    log = Log(tmp_path_factory.mktemp("log") / "log")
    log.append_batch(leaves[:200])
    log.append_batch(leaves[200:])
    cp = Checkpoint(ORIGIN, log.size, log.root())
    signed = sign_checkpoint(cp, log_key) + "".join(cosign(w, cp.text()) for w in witnesses[:2])
    i = 137
    bundle = make_proof_bundle(leaves[i], i, log.size, log.inclusion_proof(i), signed,
                               log_key.vkey, [(w.name, w.vkey) for w in witnesses], quorum=2,
                               salt=salts[i], record=canonical_json(records[i]))
    log.close()
    return {"bundle": bundle, "leaves": leaves, "log_key": log_key, "witnesses": witnesses}


def run(tmp_path: Path, bundle: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(bundle))
    return subprocess.run([sys.executable, "-m", "tocsin.engines.ledger.verify", str(path)],
                          check=False, capture_output=True, text=True, timeout=60)


def test_good_bundle_verifies(tmp_path: Path, world) -> None:
    res = run(tmp_path, world["bundle"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("OK: leaf 137 is in tocsin.example/ledger at size 300")
    assert "cosigned by 2/3 witnesses" in res.stdout


def test_the_file_alone_verifies(tmp_path: Path, world) -> None:
    # copied anywhere and run with tocsin and numpy made unimportable
    alone = tmp_path / "verify.py"
    alone.write_text(Path(VERIFY).read_text())
    (tmp_path / "proof.json").write_text(json.dumps(world["bundle"]))
    code = ("import sys, runpy; sys.modules['tocsin'] = sys.modules['numpy'] = None;"
            "sys.argv = ['verify.py', 'proof.json'];"
            "runpy.run_path('verify.py', run_name='__main__')")
    res = subprocess.run([sys.executable, "-I", "-c", code], check=False, capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("OK")


def test_verifier_imports_nothing_else(tmp_path: Path, world) -> None:
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(world["bundle"]))
    code = ("import runpy, sys; sys.argv = ['verify', sys.argv[1]];\n"
            "try:\n  runpy.run_module('tocsin.engines.ledger.verify', run_name='__main__')\n"
            "except SystemExit as e:\n  code = e.code\n"
            "mods = sorted(m for m in sys.modules if m.startswith(('tocsin', 'numpy')))\n"
            "print(code, mods)")
    res = subprocess.run([sys.executable, "-c", code, str(path)], check=False,
                         capture_output=True, text=True, timeout=60)
    # (run as __main__, the verifier itself is not listed under its module name)
    assert res.stdout.strip().splitlines()[-1] == \
        "0 ['tocsin', 'tocsin.engines', 'tocsin.engines.ledger']", res.stderr


def _tampered(world) -> list[tuple[str, dict, str]]:
    b = world["bundle"]
    other_log = N.Signer.generate(ORIGIN)
    lines = b["checkpoint"].split("\n")
    cases = [
        ("leaf", {**b, "leaf": world["leaves"][138].hex()}, "inclusion proof"),
        ("index", {**b, "index": 138}, "inclusion proof"),
        ("proof hash", {**b, "proof": [b["proof"][0][:-2] + "00", *b["proof"][1:]]},
         "inclusion proof"),
        ("short proof", {**b, "proof": b["proof"][:-1]}, "inclusion proof"),
        ("tree size", {**b, "tree_size": 299}, "tree size"),
        ("log key", {**b, "log_vkey": other_log.vkey}, "no signature by the log key"),
        ("checkpoint size", {**b, "checkpoint": b["checkpoint"].replace("\n300\n", "\n301\n")},
         "checkpoint signature"),
        ("quorum", {**b, "quorum": 3}, "witness quorum"),
        ("witness dropped", {**b, "checkpoint": "\n".join(lines[:-2]) + "\n"}, "witness quorum"),
        ("record", {**b, "opening": {**b["opening"], "record": "eyJ4IjoxfQ=="}},
         "commitment opening"),
        ("salt", {**b, "opening": {**b["opening"], "salt": "00" * 32}}, "commitment opening"),
        ("format", {**b, "format": "other"}, "format"),
    ]
    return cases


def test_tampered_bundles_fail_in_process_and_name_the_check(world) -> None:
    assert verify_bundle(world["bundle"]).startswith("OK")
    for what, bundle, reason in _tampered(world):
        with pytest.raises(Failure, match=reason):
            verify_bundle(bundle)
        assert what


def test_tampered_bundle_fails_as_a_process(tmp_path: Path, world) -> None:
    for what, bundle, reason in _tampered(world)[:3] + _tampered(world)[7:10]:
        res = run(tmp_path, bundle)
        assert res.returncode == 1, (what, res.stdout)
        assert res.stdout.startswith("FAIL: ") and reason in res.stdout, (what, res.stdout)
    (tmp_path / "junk.json").write_text("{not json")
    res = subprocess.run([sys.executable, "-m", "tocsin.engines.ledger.verify",
                          str(tmp_path / "junk.json")], check=False, capture_output=True,
                         text=True)
    assert res.returncode == 2 and res.stdout.startswith("FAIL: cannot read")


def test_verifier_agrees_with_library_on_random_proofs(world) -> None:
    b = world["bundle"]
    leaves = world["leaves"]
    for i in (0, 1, 255, 256, 299):
        proof = M.inclusion_proof(leaves, i)
        ok = {**b, "leaf": leaves[i].hex(), "index": i, "proof": [p.hex() for p in proof]}
        ok.pop("opening")
        assert verify_bundle(ok).startswith("OK")
        bad = {**ok, "index": (i + 1) % 300}
        with pytest.raises(Failure):
            verify_bundle(bad)
        assert not M.verify_inclusion(leaves[i], (i + 1) % 300, 300, proof, M.root_hash(leaves))
