"""C2SP signed notes and checkpoints."""

from __future__ import annotations

import base64

import pytest

from tocsin.engines.ledger import merkle as M
from tocsin.engines.ledger import note as N
from tocsin.engines.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
)

# Known answer from golang.org/x/mod/sumdb/note, the reference implementation.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1" \
    "FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
# The example of the C2SP signed-note specification.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1Y"
             "Eq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")


def test_reference_key_and_signature_known_answer() -> None:
    signer = N.Signer.from_skey(GO_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.vkey == GO_VKEY
    assert signer.skey == GO_SKEY
    assert N.sign_note(GO_TEXT, signer) == GO_NOTE  # Ed25519 is deterministic
    opened = N.open_note(GO_NOTE, [GO_VKEY])
    assert opened.text == GO_TEXT
    assert [s.name for s in opened.verified] == ["PeterNeumann"]


def test_spec_example_opens() -> None:
    v = N.parse_vkey(SPEC_VKEY)
    assert v.key_id.hex() == "530d903a" and v.sig_type == N.SIG_ED25519
    assert N.open_note(SPEC_NOTE, [v]).text == "This is an example message.\n"


def test_round_trip_multiple_signers_and_unknown_keys_ignored() -> None:
    a, b, c = (N.Signer.generate(n) for n in ("a.example/log", "b.example/x", "c.example/y"))
    signed = N.sign_note("hello\nworld\n", a, b, c)
    assert signed.count("\u2014 ") == 3
    opened = N.open_note(signed, [b.verifier])
    assert [s.name for s in opened.verified] == ["b.example/x"]
    assert len(opened.signatures) == 3
    assert N.parse_note(opened.signed_text()).text == "hello\nworld\n"


def test_forged_signature_rejected() -> None:
    signer = N.Signer.generate("log.example/a")
    signed = N.sign_note("amount: 10\n", signer)
    # same text, different signed content
    forged = signed.replace("amount: 10", "amount: 99")
    with pytest.raises(N.InvalidSignature):
        N.open_note(forged, [signer.vkey])
    # a signature made by another key under the same name and key ID
    impostor = N.Signer.generate("log.example/a")
    line = N.Signature(signer.name, signer.key_id,
                       impostor.note_signature(b"amount: 99\n")).line()
    with pytest.raises(N.InvalidSignature):
        N.open_note("amount: 99\n\n" + line, [signer.vkey])


def test_wrong_key_id_or_name_is_not_a_known_signature() -> None:
    signer = N.Signer.generate("log.example/a")
    other = N.Signer.generate("log.example/a")  # same name, different key -> different ID
    assert other.key_id != signer.key_id
    signed = N.sign_note("text\n", other)
    with pytest.raises(N.UnverifiedNote):
        N.open_note(signed, [signer.vkey])
    # right key, line relabelled with another name: unknown, so unverified
    relabelled = N.sign_note("text\n", signer).replace("log.example/a", "log.example/b")
    with pytest.raises(N.UnverifiedNote):
        N.open_note(relabelled, [signer.vkey])
    # right name, key ID bytes altered
    sig = N.parse_note(N.sign_note("text\n", signer)).signatures[0]
    bad = N.Signature(sig.name, bytes([sig.key_id[0] ^ 1]) + sig.key_id[1:], sig.signature)
    with pytest.raises(N.UnverifiedNote):
        N.open_note("text\n\n" + bad.line(), [signer.vkey])


@pytest.mark.parametrize("note", [
    "no blank line\n\u2014 a AAAAAAAA\n",
    "text\n\n",                                   # no signatures
    "text\n\nnot a signature\n",
    "text\n\n\u2014 a AAAA\n",                      # too short
    "text\n\n\u2014 a !!notbase64!!\n",
    "text\n\n\u2014 a+b AAAAAAAA\n",                # '+' in key name
    "te\x07xt\n\n\u2014 a AAAAAAAA\n",              # control character
    "text\n\n\u2014 a AAAAAAAA",                    # no final newline
    b"text \xff\n\n\xe2\x80\x94 a AAAAAAAA\n",      # not UTF-8
])
def test_malformed_notes(note) -> None:
    with pytest.raises(N.MalformedNote):
        N.open_note(note, [GO_VKEY])


def test_vkey_parsing_rejects_bad_keys() -> None:
    v = N.parse_vkey(GO_VKEY)
    assert v.vkey == GO_VKEY
    for bad in ["PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # key ID
                "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",  # key
                "Peter+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",          # name
                "PeterNeumann+c74f20a3",
                "PeterNeumann+c74f20a3+" + base64.b64encode(b"\x09" + b"k" * 32).decode()]:
        with pytest.raises(ValueError):
            N.parse_vkey(bad)
    with pytest.raises(ValueError):
        N.Signer.generate("has space")
    with pytest.raises(ValueError):
        N.Signer.from_skey(GO_SKEY.replace("c74f20a3", "c74f20a4"))


def test_cosignature_key_id_uses_type_0x04() -> None:
    s = N.Signer.generate("witness.example/w1", N.SIG_COSIGNATURE_V1)
    assert s.key_id == N.key_id("witness.example/w1", 0x04, s.public_key)
    assert s.key_id != N.key_id("witness.example/w1", 0x01, s.public_key)
    assert base64.b64decode(s.vkey.split("+", 2)[2])[0] == 0x04


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_text_format() -> None:
    root = bytes.fromhex("0ac518" + "6a" * 29)
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, root)
    assert cp.text() == ("example.com/behind-the-sofa\n20852163\n"
                         + base64.b64encode(root).decode() + "\n")
    assert Checkpoint.parse(cp.text()) == cp
    ext = Checkpoint("o", 0, M.EMPTY_ROOT, ("ext one", "ext two"))
    assert ext.text().endswith("\next one\next two\n")
    assert Checkpoint.parse(ext.text()) == ext


@pytest.mark.parametrize("text", [
    "origin\n10\n",                                                     # no root
    "origin\n010\n" + base64.b64encode(b"r" * 32).decode() + "\n",     # leading zero
    "origin\n-1\n" + base64.b64encode(b"r" * 32).decode() + "\n",
    "origin\n10\n" + base64.b64encode(b"r" * 31).decode() + "\n",      # short hash
    "\n10\n" + base64.b64encode(b"r" * 32).decode() + "\n",            # empty origin
    "origin\n10\n" + base64.b64encode(b"r" * 32).decode() + "\n\n",    # empty extension
    "origin\n10\n" + base64.b64encode(b"r" * 32).decode(),             # no newline
])
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_signed_checkpoint_round_trip_and_swaps() -> None:
    log_key = N.Signer.generate("tocsin.example/ledger")
    leaves = [b"a", b"b", b"c"]
    cp3 = Checkpoint("tocsin.example/ledger", 3, M.root_hash(leaves))
    cp2 = Checkpoint("tocsin.example/ledger", 2, M.root_hash(leaves[:2]))
    signed3, signed2 = sign_checkpoint(cp3, log_key), sign_checkpoint(cp2, log_key)
    got, opened = open_checkpoint(signed3, [log_key.vkey])
    assert got == cp3 and opened.verified
    # swapped checkpoint: body of size 2 with the signature of size 3
    swapped = cp2.text() + "\n" + signed3.split("\n\n", 1)[1]
    with pytest.raises(N.InvalidSignature):
        open_checkpoint(swapped, [log_key.vkey])
    # a root hash swapped in the body
    tampered = signed3.replace(base64.b64encode(cp3.root_hash).decode(),
                               base64.b64encode(cp2.root_hash).decode())
    with pytest.raises(N.InvalidSignature):
        open_checkpoint(tampered, [log_key.vkey])
    # signed by a key whose name is not the origin: not the log's signature
    stranger = N.Signer.generate("someone.else/key")
    with pytest.raises(N.UnverifiedNote):
        open_checkpoint(sign_checkpoint(cp3, stranger), [stranger.vkey])
    with pytest.raises(CheckpointError):
        open_checkpoint(signed2, [log_key.vkey], origin="other.example/log")
