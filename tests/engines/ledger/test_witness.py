"""Witness cosigning: cosignature/v1 format, the tlog-witness rules, the HTTP server."""

from __future__ import annotations

import base64
import http.client
import os
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tocsin.engines.ledger import merkle as M
from tocsin.engines.ledger import note as N
from tocsin.engines.ledger import witness as W
from tocsin.engines.ledger.checkpoint import Checkpoint, sign_checkpoint
from tocsin.engines.ledger.witness_server import serve_in_thread

ORIGIN = "tocsin.example/ledger"


class FakeLog:
    """A log on the in-memory functions (the real Log is tested elsewhere)."""

    def __init__(self, signer: N.Signer, prefix: bytes = b"") -> None:
        self.signer, self.prefix, self.entries = signer, prefix, []

    def grow(self, n: int) -> None:
        start = len(self.entries)
        self.entries += [self.prefix + b"%d" % i for i in range(start, start + n)]

    def checkpoint(self, size: int | None = None) -> str:
        size = len(self.entries) if size is None else size
        cp = Checkpoint(ORIGIN, size, M.root_hash(self.entries[:size]))
        return sign_checkpoint(cp, self.signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = len(self.entries) if new is None else new
        return M.consistency_proof(self.entries[:new], old)


@pytest.fixture
def log_key() -> N.Signer:
    return N.Signer.generate(ORIGIN)


@pytest.fixture
def state(tmp_path: Path, log_key: N.Signer) -> W.WitnessState:
    skey, _ = W.generate_witness_key("witness.example/w1")
    st = W.WitnessState(tmp_path / "witness.sqlite3", skey)
    st.add_log(log_key.vkey)
    return st


@pytest.fixture
def server(state: W.WitnessState) -> Iterator[str]:
    srv, url = serve_in_thread(state)
    yield url
    srv.shutdown()
    srv.server_close()


def post(url: str, body: bytes, path: str = "/add-checkpoint") -> tuple[int, str, str]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", path, body=body)
    resp = conn.getresponse()
    out = resp.status, resp.getheader("Content-Type", ""), resp.read().decode()
    conn.close()
    return out


# ------------------------------------------------------------ cosignatures


def test_cosignature_format(state: W.WitnessState, log_key: N.Signer) -> None:
    log = FakeLog(log_key)
    log.grow(5)
    signed = log.checkpoint()
    text = N.parse_note(signed).text
    line = W.cosign(state.signer, text, timestamp=1679315147)
    name, b64 = line[2:-1].split(" ")
    raw = base64.b64decode(b64)
    assert name == "witness.example/w1" and len(raw) == 4 + 8 + 64
    assert raw[:4] == N.key_id(name, 0x04, state.signer.public_key)
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    msg = b"cosignature/v1\ntime 1679315147\n" + text.encode()
    N.Verifier(name, raw[:4], 0x04, state.signer.public_key)  # shape
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    Ed25519PublicKey.from_public_bytes(state.signer.public_key).verify(raw[12:], msg)
    assert W.verify_cosignature(signed + line, state.vkey) == 1679315147
    # the cosignature does not carry over to another checkpoint
    log.grow(1)
    other = log.checkpoint()
    with pytest.raises(N.InvalidSignature):
        W.verify_cosignature(other + line, state.vkey)
    with pytest.raises(N.UnverifiedNote):
        W.verify_cosignature(signed, state.vkey)


def test_log_keys_cannot_cosign() -> None:
    with pytest.raises(ValueError, match="0x04"):
        W.WitnessState(":memory:", N.Signer.generate("w.example/x"))


# ---------------------------------------------------------- witness rules


def test_witness_follows_a_growing_log(state: W.WitnessState, log_key: N.Signer) -> None:
    log = FakeLog(log_key)
    log.grow(3)
    line = state.add_checkpoint(0, [], log.checkpoint())
    W.verify_cosignature(log.checkpoint() + line, state.vkey)
    for grow in (1, 7, 64, 1):
        old = len(log.entries)
        log.grow(grow)
        line = state.add_checkpoint(old, log.proof(old), log.checkpoint())
        W.verify_cosignature(log.checkpoint() + line, state.vkey)
    assert state.latest(ORIGIN)[:2] == (76, M.root_hash(log.entries))
    # same checkpoint again: consistent, cosigned again
    state.add_checkpoint(76, [], log.checkpoint())
    assert state.evidence() == []
    with pytest.raises(W.BadProof, match="equal sizes"):
        state.add_checkpoint(76, [b"\0" * 32], log.checkpoint())


def test_witness_refuses_forks(state: W.WitnessState, log_key: N.Signer) -> None:
    honest, forked = FakeLog(log_key), FakeLog(log_key)
    honest.grow(10)
    forked.entries = honest.entries[:6] + [b"rewritten %d" % i for i in range(4)]
    state.add_checkpoint(0, [], honest.checkpoint())
    # same size, another root: 409
    with pytest.raises(W.Conflict, match="FORK") as exc:
        state.add_checkpoint(10, [], forked.checkpoint())
    assert exc.value.latest_size == 10
    # a larger forked tree: its own proof does not connect to the cosigned root: 422
    forked.grow(5)
    with pytest.raises(W.BadProof):
        state.add_checkpoint(10, forked.proof(10), forked.checkpoint())
    # nor does the honest proof
    honest.grow(5)
    with pytest.raises(W.BadProof):
        state.add_checkpoint(10, honest.proof(10), forked.checkpoint())
    assert state.latest(ORIGIN)[0] == 10
    assert [e["reason"].split()[0] for e in state.evidence(ORIGIN)] == \
        ["FORK", "consistency", "consistency"]
    state.add_checkpoint(10, honest.proof(10), honest.checkpoint())
    assert state.latest(ORIGIN)[0] == 15


def test_witness_refuses_rewinds(state: W.WitnessState, log_key: N.Signer) -> None:
    log = FakeLog(log_key)
    log.grow(20)
    state.add_checkpoint(0, [], log.checkpoint())
    older = log.checkpoint(12)
    with pytest.raises(W.BadRequest, match="larger"):
        state.add_checkpoint(20, [], older)
    with pytest.raises(W.Conflict, match="REWIND") as exc:
        state.add_checkpoint(12, [], older)
    assert exc.value.latest_size == 20
    with pytest.raises(W.Conflict, match="REWIND"):
        state.add_checkpoint(0, [], older)
    assert state.latest(ORIGIN)[0] == 20


def test_witness_rejects_unknown_logs_and_bad_signatures(state: W.WitnessState,
                                                          log_key: N.Signer) -> None:
    stranger = N.Signer.generate("other.example/log")
    cp = Checkpoint("other.example/log", 1, M.root_hash([b"x"]))
    with pytest.raises(W.UnknownLog):
        state.add_checkpoint(0, [], sign_checkpoint(cp, stranger))
    impostor = N.Signer.generate(ORIGIN)  # right origin, wrong key
    log = FakeLog(impostor)
    log.grow(2)
    with pytest.raises(W.BadSignature):
        state.add_checkpoint(0, [], log.checkpoint())
    good = FakeLog(log_key)
    good.grow(2)
    tampered = good.checkpoint().replace("\n2\n", "\n3\n", 1)
    with pytest.raises(W.BadSignature):
        state.add_checkpoint(0, [], tampered)
    with pytest.raises(W.BadRequest):
        state.add_checkpoint(0, [], "not a note")
    assert state.latest(ORIGIN) is None


def test_concurrent_submissions_cannot_roll_back(state: W.WitnessState,
                                                 log_key: N.Signer) -> None:
    log = FakeLog(log_key)
    log.grow(4)
    state.add_checkpoint(0, [], log.checkpoint())
    sizes = [5, 9, 17, 33, 65, 129]
    log.grow(129 - 4)
    results: dict[int, object] = {}

    def submit(size: int) -> None:
        try:
            results[size] = state.add_checkpoint(4, log.proof(4, size), log.checkpoint(size))
        except W.WitnessError as exc:
            results[size] = exc

    threads = [threading.Thread(target=submit, args=(s,)) for s in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [s for s, r in results.items() if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, W.Conflict) and r.latest_size == winners[0]
               for s, r in results.items() if s != winners[0])
    assert state.latest(ORIGIN)[0] == winners[0]


# -------------------------------------------------------------- HTTP server


def test_http_add_checkpoint_status_codes(server: str, state: W.WitnessState,
                                          log_key: N.Signer) -> None:
    log = FakeLog(log_key)
    log.grow(8)
    body = W.format_add_checkpoint_body(0, [], log.checkpoint())
    status, ctype, text = post(server, body)
    assert status == 200, text
    assert text.startswith("\u2014 witness.example/w1 ") and text.endswith("\n")
    W.verify_cosignature(log.checkpoint() + text, state.vkey)

    log.grow(5)
    # 409: stale old size, body is the latest size
    status, ctype, text = post(server, W.format_add_checkpoint_body(0, [], log.checkpoint()))
    assert (status, ctype, text) == (409, "text/x.tlog.size", "8\n")
    # 422: a proof that does not verify
    bad = [os.urandom(32) for _ in log.proof(8)]
    status, _, _ = post(server, W.format_add_checkpoint_body(8, bad, log.checkpoint()))
    assert status == 422
    # 403: not signed by the log's key
    impostor = FakeLog(N.Signer.generate(ORIGIN))
    impostor.entries = list(log.entries)
    status, _, _ = post(server, W.format_add_checkpoint_body(8, log.proof(8),
                                                             impostor.checkpoint()))
    assert status == 403
    # 404: unknown origin
    cp = Checkpoint("nobody.example/log", 1, M.root_hash([b"x"]))
    signed = sign_checkpoint(cp, N.Signer.generate("nobody.example/log"))
    status, _, _ = post(server, W.format_add_checkpoint_body(0, [], signed))
    assert status == 404
    # 400: old size above the checkpoint size, and garbage
    status, _, _ = post(server, W.format_add_checkpoint_body(99, [], log.checkpoint()))
    assert status == 400
    for garbage in (b"", b"hello", b"old 01\n\n" + log.checkpoint().encode(),
                    b"old 8\nnot-base64!\n\n" + log.checkpoint().encode(),
                    b"old 8\n" + log.checkpoint().encode()):
        assert post(server, garbage)[0] == 400, garbage
    assert post(server, b"x", path="/elsewhere")[0] == 404
    # finally the right proof: 200, and the state moved
    status, _, text = post(server, W.format_add_checkpoint_body(8, log.proof(8),
                                                                log.checkpoint()))
    assert status == 200
    assert state.latest(ORIGIN)[0] == 13


def test_client_request_cosignature(server: str, state: W.WitnessState,
                                    log_key: N.Signer) -> None:
    log = FakeLog(log_key)
    log.grow(3)
    line = W.request_cosignature(server, 0, [], log.checkpoint(), witness_vkey=state.vkey)
    assert W.verify_cosignature(log.checkpoint() + line, state.vkey) <= int(time.time()) + 1
    log.grow(2)
    with pytest.raises(W.Conflict) as exc:
        W.request_cosignature(server, 0, [], log.checkpoint())
    assert exc.value.latest_size == 3
    old = exc.value.latest_size  # the documented recovery: retry from the witness's size
    with pytest.raises(W.BadProof):
        W.request_cosignature(server + "/add-checkpoint", old, [b"\0" * 32], log.checkpoint())
    line = W.request_cosignature(server, old, log.proof(old), log.checkpoint(),
                                 witness_vkey=state.vkey)
    # a client configured with another witness key refuses the answer
    _, other_vkey = W.generate_witness_key("witness.example/w1")
    with pytest.raises(N.NoteError):
        W.request_cosignature(server, 5, [], log.checkpoint(), witness_vkey=other_vkey)


def test_server_module_cli(tmp_path: Path, log_key: N.Signer) -> None:
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "tocsin.engines.ledger.witness_server",
                          "genkey", "witness.example/cli"], capture_output=True, text=True,
                         check=True)
    key = tmp_path / "w.key"
    key.write_text(out.stdout)
    assert out.stderr.startswith("vkey: witness.example/cli+")
    subprocess.run([sys.executable, "-m", "tocsin.engines.ledger.witness_server", "add-log",
                    "--state", str(tmp_path / "w.db"), "--key", str(key), log_key.vkey],
                   check=True, capture_output=True)
    st = W.WitnessState(tmp_path / "w.db", key.read_text().strip())
    assert st.log_keys(ORIGIN)[0].vkey == log_key.vkey


def test_serve_function_in_a_subprocess(tmp_path: Path, log_key: N.Signer) -> None:
    import subprocess
    import sys
    skey, vkey = W.generate_witness_key("witness.example/proc")
    (tmp_path / "w.key").write_text(skey + "\n")
    W.WitnessState(tmp_path / "w.db", skey).add_log(log_key.vkey)
    code = ("import sys; from tocsin.engines.ledger.witness_server import serve; "
            "serve('127.0.0.1', 0, sys.argv[1], sys.argv[2], verbose=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "w.db"),
                             str(tmp_path / "w.key")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" listening on ")[1].strip()
        assert proc.stdout.readline().strip() == f"witness vkey: {vkey}"
        log = FakeLog(log_key)
        log.grow(4)
        line = W.request_cosignature(url, 0, [], log.checkpoint(), witness_vkey=vkey)
        assert line.startswith("\u2014 witness.example/proc ")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
