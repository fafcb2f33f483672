"""RFC 9162 Merkle hashing: reference vectors and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.engines.ledger import merkle as M

# The standard 8-leaf test tree of the certificate-transparency / transparency-dev
# reference test suites (RFC 6962 hashing, unchanged in RFC 9162).
LEAVES = [bytes.fromhex(h) for h in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]]
ROOTS = [bytes.fromhex(h) for h in [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]
# (0-based leaf index, tree size, proof)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
# (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SOME = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def h(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


def test_empty_tree_root() -> None:
    assert M.root_hash([]) == EMPTY == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    assert M.root_hash(LEAVES[:size]) == ROOTS[size - 1]


def test_leaf_and_node_hash_domain_separation() -> None:
    assert M.leaf_hash(b"") == ROOTS[0]
    assert M.node_hash(M.leaf_hash(b""), M.leaf_hash(b"\x00")) == ROOTS[1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    assert M.inclusion_proof(LEAVES[:size], index) == h(proof)
    assert M.verify_inclusion(LEAVES[index], index, size, h(proof), ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_reference_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    assert M.consistency_proof(LEAVES[:new], old) == h(proof)
    assert M.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], h(proof))


def _flip(b: bytes, mask: int) -> bytes:
    return bytes([b[0] ^ mask]) + b[1:]


@pytest.mark.parametrize(("index", "size", "proof"), [v for v in INCLUSION if v[2]])
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[str]) -> None:
    p, root, leaf = h(proof), ROOTS[size - 1], LEAVES[index]
    probes = [
        (leaf, index, size, p, EMPTY), (leaf, index, size, p, SOME),
        (b"WrongLeaf", index, size, p, root),
        (leaf, index, size, [*p, b""], root), (leaf, index, size, [*p, root], root),
        (leaf, index, size, [b"", *p], root), (leaf, index, size, [root, *p], root),
        (leaf, index, size, p[:-1], root), (leaf, index, size, [p[0], SOME, *p[1:]], root),
    ]
    probes += [(leaf, index, size, [*p[:i], _flip(p[i], 8), *p[i + 1:]], root)
               for i in range(len(p))]
    for other in (index - 1, index + 1, index ^ 2):
        if 0 <= other < size:
            probes.append((leaf, other, size, p, root))
    for other_size in (size * 2, size // 2):
        if index < other_size:
            probes.append((leaf, index, other_size, p, root))
    for args in probes:
        assert not M.verify_inclusion(*args), args


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY if v[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    p, r1, r2 = h(proof), ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        (old, new, b"WrongRoot", r2, p), (old, new, r1, b"WrongRoot", p),
        (old, new, r2, r1, p), (old, new, r1, r2, []),
        (old, new, r1, r2, [*p, b""]), (old, new, r1, r2, [*p, r1]),
        (old, new, r1, r2, [*p, r2]), (old, new, r1, r2, [b"", *p]),
        (old, new, r1, r2, [r1, *p]), (old, new, r1, r2, [r2, *p]),
        (old, new, r1, r2, [p[0], *p]), (old, new, r1, r2, p[:-1]),
    ]
    probes += [(old, new, r1, r2, [*p[:i], _flip(p[i], 16), *p[i + 1:]]) for i in range(len(p))]
    for o in (old - 1, old + 1, old ^ 2):
        if 0 < o <= new:
            probes.append((o, new, r1, r2, p))
    for n in (new * 2, new // 2):
        if n >= old:
            probes.append((old, n, r1, r2, p))
    for args in probes:
        assert not M.verify_consistency(*args), args


def test_consistency_edge_cases() -> None:
    assert M.verify_consistency(0, 0, EMPTY, EMPTY, [])
    assert M.verify_consistency(0, 5, EMPTY, ROOTS[4], [])
    assert not M.verify_consistency(0, 5, EMPTY, ROOTS[4], [EMPTY])
    assert not M.verify_consistency(0, 5, SOME, ROOTS[4], [])
    assert M.verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    assert not M.verify_consistency(3, 3, ROOTS[2], ROOTS[3], [])
    assert not M.verify_consistency(3, 3, ROOTS[2], ROOTS[2], [EMPTY])
    assert not M.verify_consistency(1, 2, ROOTS[0], ROOTS[1], [])


def test_out_of_range_arguments_raise() -> None:
    with pytest.raises(ValueError, match="out of range"):
        M.inclusion_proof(LEAVES, 8)
    with pytest.raises(ValueError, match=">= 0"):
        M.inclusion_proof(LEAVES, -1)
    with pytest.raises(ValueError, match="out of range"):
        M.inclusion_proof([], 0)
    with pytest.raises(ValueError, match="larger"):
        M.consistency_proof(LEAVES[:3], 4)
    with pytest.raises(ValueError, match="out of range"):
        M.verify_inclusion(b"", 3, 3, [], ROOTS[2])
    with pytest.raises(ValueError, match="larger"):
        M.verify_consistency(5, 4, ROOTS[4], ROOTS[3], [])
    with pytest.raises(ValueError, match=">= 0"):
        M.verify_consistency(-1, 4, ROOTS[4], ROOTS[3], [])
    with pytest.raises(TypeError):
        M.root_hash(b"abc")  # a single entry is not a list of entries


# ------------------------------------------------------------------ properties

def naive_root(leaves: list[bytes]) -> bytes:
    """MTH straight from the RFC definition (independent of the module)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(leaves[:k]) + naive_root(leaves[k:])).digest()


trees = st.lists(st.binary(max_size=12), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(trees)
def test_root_matches_rfc_definition(leaves: list[bytes]) -> None:
    assert M.root_hash(leaves) == naive_root(leaves)


@settings(max_examples=150, deadline=None)
@given(trees, st.data())
def test_inclusion_proofs_verify_and_tampering_fails(leaves: list[bytes], data) -> None:
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    root = M.root_hash(leaves)
    proof = M.inclusion_proof(leaves, i)
    assert len(proof) <= n.bit_length()
    assert M.verify_inclusion(leaves[i], i, n, proof, root)
    # another entry, index, root or a flipped proof bit must fail
    assert not M.verify_inclusion(leaves[i] + b"x", i, n, proof, root)
    assert not M.verify_inclusion(leaves[i], i, n, proof, _flip(root, 1))
    j = data.draw(st.integers(0, n - 1))
    if j != i and len(set(leaves)) == n:
        # with distinct entries the tree pins every entry to its position
        assert not M.verify_inclusion(leaves[i], j, n, proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = [*proof[:k], _flip(proof[k], 0x80), *proof[k + 1:]]
        assert not M.verify_inclusion(leaves[i], i, n, bad, root)
        assert not M.verify_inclusion(leaves[i], i, n, proof[:-1], root)
    assert not M.verify_inclusion(leaves[i], i, n, [*proof, root], root)


@settings(max_examples=150, deadline=None)
@given(trees, st.data())
def test_consistency_proofs_verify_and_forks_fail(leaves: list[bytes], data) -> None:
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    old_root, new_root = M.root_hash(leaves[:m]), M.root_hash(leaves)
    proof = M.consistency_proof(leaves, m)
    assert M.verify_consistency(m, n, old_root, new_root, proof)
    # a fork: same old tree, one of the later leaves changed, must not verify
    # with the honest proof against the forked root (or vice versa)
    k = data.draw(st.integers(0, n - 1))
    forked = list(leaves)
    forked[k] = forked[k] + b"!"
    forked_root = M.root_hash(forked)
    if k < m:
        assert not M.verify_consistency(m, n, old_root, forked_root,
                                        M.consistency_proof(forked, m))
    if m < n:
        assert not M.verify_consistency(m, n, old_root, forked_root, proof)
        assert not M.verify_consistency(m, n, new_root, old_root, proof)
        bad = [*proof[:-1], _flip(proof[-1], 2)]
        assert not M.verify_consistency(m, n, old_root, new_root, bad)
