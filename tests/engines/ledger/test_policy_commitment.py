"""Witness quorum policies and salted commitments."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.engines.ledger import merkle as M
from tocsin.engines.ledger import note as N
from tocsin.engines.ledger.checkpoint import Checkpoint, sign_checkpoint
from tocsin.engines.ledger.commitment import (
    DOMAIN,
    canonical_json,
    commit,
    new_salt,
    open_commitment,
)
from tocsin.engines.ledger.policy import Policy, PolicyError, Witness, check_quorum, evaluate_quorum
from tocsin.engines.ledger.witness import cosign

ORIGIN = "tocsin.example/ledger"


@pytest.fixture(scope="module")
def keys() -> dict[str, N.Signer]:
    out = {"log": N.Signer.generate(ORIGIN)}
    for name in ("a1", "a2", "a3", "b1", "b2"):
        out[name] = N.Signer.generate(f"{name}.witness.example", N.SIG_COSIGNATURE_V1)
    return out


def cosigned(keys: dict[str, N.Signer], *names: str) -> str:
    cp = Checkpoint(ORIGIN, 3, M.root_hash([b"a", b"b", b"c"]))
    signed = sign_checkpoint(cp, keys["log"])
    return signed + "".join(cosign(keys[n], cp.text()) for n in names)


def test_simple_k_of_n(keys) -> None:
    p = Policy.simple([(n, keys[n].vkey) for n in ("a1", "a2", "a3")], 2, [keys["log"].vkey])
    assert not check_quorum(cosigned(keys), p)
    assert not check_quorum(cosigned(keys, "a1"), p)
    assert check_quorum(cosigned(keys, "a1", "a3"), p)
    assert not check_quorum(cosigned(keys, "a1", "a1"), p)  # one witness counts once
    assert not check_quorum(cosigned(keys, "a1", "b1"), p)  # b1 is not in the policy
    assert check_quorum(cosigned(keys), Policy.simple([], 0, [keys["log"].vkey]))


def test_forged_cosignature_rejects(keys) -> None:
    p = Policy.simple([(n, keys[n].vkey) for n in ("a1", "a2")], 1, [keys["log"].vkey])
    good = cosigned(keys, "a1")
    forged = good[:-10] + ("A" if good[-10] != "A" else "B") + good[-9:]
    res = evaluate_quorum(forged, p)
    assert not res.ok and "a1" in res.reason
    # a cosignature lifted from another checkpoint
    other_cp = Checkpoint(ORIGIN, 4, M.root_hash([b"a", b"b", b"c", b"d"]))
    lifted = cosigned(keys) + cosign(keys["a1"], other_cp.text())
    assert not check_quorum(lifted, p)


def test_log_signature_required_when_logs_listed(keys) -> None:
    p = Policy.simple([("a1", keys["a1"].vkey)], 1, [N.Signer.generate(ORIGIN).vkey])
    res = evaluate_quorum(cosigned(keys, "a1"), p)
    assert not res.ok and "policy log" in res.reason


def test_policy_text_with_groups(keys) -> None:
    text = f"""
    # two operators
    log {keys['log'].vkey}
    witness A1 {keys['a1'].vkey} https://a1.example/
    witness A2 {keys['a2'].vkey}
    witness A3 {keys['a3'].vkey}
    group A 2 A1 A2 A3
    witness B1 {keys['b1'].vkey}
    witness B2 {keys['b2'].vkey}
    group B any B1 B2
    group AB all A B
    quorum AB
    """
    p = Policy.parse(text)
    assert p.witnesses["A1"].url == "https://a1.example/"
    assert check_quorum(cosigned(keys, "a1", "a2", "b2"), p)
    assert not check_quorum(cosigned(keys, "a1", "a2"), p)
    assert not check_quorum(cosigned(keys, "a1", "b1", "b2"), p)
    again = Policy.parse(p.format())
    assert again.quorum == "AB" and set(again.groups) == {"A", "B", "AB"}
    assert check_quorum(cosigned(keys, "a2", "a3", "b1"), again)


@pytest.mark.parametrize("bad", [
    "witness W1 {a1}\n",                              # no quorum
    "quorum W1\n",                                    # undefined name
    "witness W1 {a1}\nwitness W2 {a1}\nquorum W1\n",  # duplicate key
    "witness W1 {log}\nquorum W1\n",                  # a log key as a witness key
    "witness W1 {a1}\ngroup G 2 W1\nquorum G\n",      # threshold above members
    "witness W1 {a1}\ngroup G any W1 W1\nquorum G\n",
    "witness W1 {a1}\nquorum W1\nquorum none\n",
    "frobnicate\nquorum none\n",
])
def test_invalid_policies(keys, bad: str) -> None:
    with pytest.raises(PolicyError):
        Policy.parse(bad.format(a1=keys["a1"].vkey, log=keys["log"].vkey))
    with pytest.raises(PolicyError):
        Policy.simple([Witness("W1", keys["a1"].vkey)], 2)


# ---------------------------------------------------------------- commitments


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": "é"}]}) == \
        '{"a":[1,2,{"c":"é","d":null}],"b":1}'.encode()
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    with pytest.raises(TypeError):
        canonical_json({1: "int key"})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical_json({"when": object()})


def test_commit_is_salted_and_domain_separated() -> None:
    record = canonical_json({"person": "Jane Doe", "event": "read"})
    s1, s2 = new_salt(), new_salt()
    assert len(s1) == 32 and s1 != s2
    c1 = commit(s1, record)
    assert c1 == hashlib.sha256(DOMAIN + s1 + record).digest()
    assert c1 != commit(s2, record)
    assert c1 != hashlib.sha256(s1 + record).digest()
    assert open_commitment(c1, s1, record)
    assert not open_commitment(c1, s2, record)
    assert not open_commitment(c1, s1, canonical_json({"person": "John Doe", "event": "read"}))
    with pytest.raises(ValueError):
        commit(b"short", record)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5),
                                                         st.booleans(), st.none()), max_size=6))
def test_canonical_json_is_deterministic(d: dict) -> None:
    import json
    assert json.loads(canonical_json(d)) == d
    assert canonical_json(dict(reversed(list(d.items())))) == canonical_json(d)
