"""Cursor-on-Target: TAK clients send positions over TCP (and TLS) and get the
operation's other units back; malformed events and floods are refused and logged."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time

import pytest
from fastapi.testclient import TestClient

from tests.operations.helpers import LAT, LON, make_operation
from tocsin.operations import cot
from tocsin.operations.cot import get_cot
from tocsin.operations.positions import get_hub


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def hand_event(uid: str, lat: float, lon: float, *, time_: dt.datetime | None = None,
               stale_s: int = 120, type_: str = "a-f-G-U-C", extra: str = "") -> bytes:
    """A CoT event written from the public CoT base schema, not from our builder."""
    now = time_ or dt.datetime.now(dt.timezone.utc)
    return (f'<event version="2.0" uid="{uid}" type="{type_}" how="h-e" time="{_iso(now)}" '
            f'start="{_iso(now)}" stale="{_iso(now + dt.timedelta(seconds=stale_s))}">'
            f'<point lat="{lat}" lon="{lon}" hae="12.5" ce="8.0" le="9999999.0"/>'
            f'<detail><contact callsign="ALPHA-1"/><track course="45.0" speed="1.5"/>'
            f'{extra}</detail></event>').encode()


@pytest.fixture
def cot_client(app, monkeypatch, request):
    for k, v in getattr(request, "param", {}).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TOCSIN_COT_PORT", "0")
    monkeypatch.setenv("TOCSIN_COT_PUSH_INTERVAL", "0.2")
    with TestClient(app) as c:
        server = get_cot(app.state.runtime)
        deadline = time.time() + 10
        while server.port is None and time.time() < deadline:
            time.sleep(0.02)
        assert server.port, "CoT listener did not start"
        yield c, server


def _wait(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _read_events(sock, want: int, timeout=10.0) -> list[cot.CotEvent]:
    sock.settimeout(timeout)
    buf = bytearray()
    out: list[cot.CotEvent] = []
    deadline = time.time() + timeout
    while len(out) < want and time.time() < deadline:
        buf.extend(sock.recv(65536))
        events, _ = cot.split_stream(buf)
        out.extend(cot.parse_event(e) for e in events)
    return out


def test_tak_positions_in_and_the_picture_back(cot_client, force):
    client, server = cot_client
    op = make_operation(client, force)
    hub = get_hub(force.runtime)
    # the other unit has a position (from the web client): the TAK user must see it
    client.post(f"/api/v1/operations/{op.id}/positions", headers=op.cmd, json={"items": [
        {"op_unit_id": op.other_unit_id, "lat": LAT + 0.002, "lon": LON + 0.002}]})
    pytak = pytest.importorskip("pytak")
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        first = pytak.gen_cot(lat=LAT + 0.003, lon=LON + 0.003, uid="ANDROID-patrol1",
                              cot_type="a-f-G-U-C", stale=120)
        sock.sendall(first)
        # several events in one write, one split across writes, and garbage between them
        now = dt.datetime.now(dt.timezone.utc)
        bad = [b"<event><point/></event>",  # no uid/type/how/times
               hand_event("ANDROID-patrol1", 95.0, LON),  # lat out of range
               hand_event("ANDROID-patrol1", LAT, LON, time_=now - dt.timedelta(hours=3),
                          stale_s=60),  # already stale
               b'<!DOCTYPE event [<!ENTITY x "boom">]><event uid="a">&x;</event>',
               hand_event("UNKNOWN-DEVICE", LAT, LON),
               hand_event("ANDROID-patrol1", 48.85, 2.35),  # far outside the operation
               b"<evnt>junk</evnt>"]
        good = hand_event("ANDROID-patrol1", LAT + 0.006, LON + 0.006)
        sock.sendall(b"".join(bad) + good[:40])
        time.sleep(0.1)
        sock.sendall(good[40:] + hand_event("ping", 0, 0, type_="t-x-c-t"))
        assert _wait(lambda: server.stats["accepted"] >= 2), server.stats
        assert _wait(lambda: server.stats["rejected"] >= 7), server.stats
        back = _read_events(sock, 1)
    assert [e.callsign for e in back] == ["BRAVO-2"]
    assert back[0].type == "a-f-G-E-V"
    assert (round(back[0].lat, 5), round(back[0].lon, 5)) == (round(LAT + 0.002, 5),
                                                              round(LON + 0.002, 5))
    assert server.stats["ignored.not_a_position"] == 1
    for reason in ("missing or bad uid", "lat out of range", "event already stale",
                   "not well-formed XML", "unknown uid 'UNKNOWN-DEVICE'"):
        assert any(k.startswith("rejected." + reason) for k in server.stats), reason
    assert any("outside_operation" in k for k in server.stats)
    latest = {r[0]: r for r in hub.snapshot(op.id)}
    assert round(latest[op.unit_id][1], 6) == round(LAT + 0.006, 6)
    assert latest[op.unit_id][4] == 45.0  # course from <track>


def test_a_flood_from_one_tak_client_is_cut_to_the_rate_limit(cot_client, force):
    client, server = cot_client
    op = make_operation(client, force)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"".join(hand_event("ANDROID-patrol1", LAT + 0.005, LON + 0.005)
                              for _ in range(200)))
        assert _wait(lambda: server.stats["accepted"] + server.stats["rejected"] >= 200)
    assert 5 <= server.stats["accepted"] <= 15
    assert server.stats["rejected"] == 200 - server.stats["accepted"]
    assert any("rate_limited" in k for k in server.stats)
    # the connection stays usable; an oversized event closes it with a logged reason
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"<event " + b"x" * (cot.MAX_EVENT_BYTES + 10))
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed by the server
    assert any("larger than 64 KiB" in k for k in server.stats)
    assert op.id


def _cert(tmp_path, name: str, issuer=None, *, ca: bool = False):
    """A key and certificate for ``name`` (self-signed, or signed by ``issuer``, a
    (cert, key) pair), written as PEM files: (cert path, key path, (cert, key))."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_cert, signer_key = issuer or (None, key)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(signer_cert.subject if signer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                        False)
    cert = builder.sign(signer_key, hashes.SHA256())
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, (cert, key)


def _self_signed(tmp_path):
    cert, key, _ = _cert(tmp_path, "localhost")
    return cert, key


def test_cot_over_tls(app, force, monkeypatch, tmp_path):
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("TOCSIN_COT_PORT", "0")
    monkeypatch.setenv("TOCSIN_COT_CERT", str(cert))
    monkeypatch.setenv("TOCSIN_COT_KEY", str(key))
    with TestClient(app) as client:
        server = get_cot(app.state.runtime)
        assert _wait(lambda: server.port is not None)
        make_operation(client, force)
        ctx = ssl.create_default_context(cafile=str(cert))
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(hand_event("ANDROID-patrol1", LAT + 0.005, LON + 0.005))
                assert _wait(lambda: server.stats["accepted"] == 1)
        # plain text on the TLS port is refused, nothing ingested
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(hand_event("ANDROID-patrol1", LAT + 0.005, LON + 0.005))
            sock.settimeout(5)
            try:
                sock.recv(100)
            except (ConnectionError, TimeoutError):
                pass
        assert server.stats["accepted"] == 1


def test_parse_event_unit():
    ev = cot.parse_event(hand_event("U-1", 60.1, 24.9))
    assert (ev.uid, ev.lat, ev.lon, ev.hae, ev.ce, ev.course, ev.speed) == (
        "U-1", 60.1, 24.9, 12.5, 8.0, 45.0, 1.5)
    with pytest.raises(cot.CotError, match="stale before start"):
        now = dt.datetime.now(dt.timezone.utc)
        cot.parse_event(hand_event("U-1", 60, 24, time_=now, stale_s=-10))
    with pytest.raises(cot.CotError, match="forbidden XML construct"):
        cot.parse_event(b'<!DOCTYPE event [<!ENTITY x "boom">]><event uid="a">&x;</event>')
    built = cot.build_event(uid="tocsin-1", type_="a-f-G-U-C", lat=60.2, lon=24.9,
                            at=dt.datetime.now(dt.timezone.utc), callsign="A & <B>")
    back = cot.parse_event(built)
    assert back.callsign == "A & <B>" and back.how == "m-g"


def test_reconnecting_does_not_reset_the_flood_limit(cot_client, force, monkeypatch):
    from tocsin.operations import positions

    monkeypatch.setattr(positions, "RATE", 0.001)  # no refill during the test
    client, server = cot_client
    make_operation(client, force)
    flood = b"".join(hand_event("ANDROID-patrol1", LAT + 0.005, LON + 0.005)
                     for _ in range(20))
    for total in (20, 40):  # two connections, one after the other
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(flood)
            assert _wait(lambda t=total: server.stats["accepted"]
                         + server.stats["rejected"] >= t)
    assert server.stats["accepted"] == positions.BURST  # the first burst only
    assert server.stats["rejected.position of 'ANDROID-patrol1': rate_limited"] == 30


def _start(app, monkeypatch, **env):
    monkeypatch.setenv("TOCSIN_COT_PORT", "0")
    for k, v in env.items():
        monkeypatch.setenv(f"TOCSIN_COT_{k.upper()}", v)
    client = TestClient(app)
    client.__enter__()
    server = get_cot(app.state.runtime)
    assert _wait(lambda: server.port is not None or server.refused is not None)
    return client, server


@pytest.mark.parametrize("env, reason", [
    ({"host": "0.0.0.0"}, "without client certificates"),
    ({"host": "0.0.0.0", "ca": "/nonexistent/ca.pem"},
     "TOCSIN_COT_CA needs TOCSIN_COT_CERT and TOCSIN_COT_KEY")])
def test_no_unauthenticated_listener_on_the_network(app, force, monkeypatch, env, reason):
    client, server = _start(app, monkeypatch, **env)
    try:
        assert server.port is None and reason in server.refused
    finally:
        client.__exit__(None, None, None)


def test_an_explicitly_trusted_network_may_have_a_plain_listener(app, force, monkeypatch):
    client, server = _start(app, monkeypatch, host="0.0.0.0", allow_unauthenticated="1")
    try:
        assert server.refused is None and server.port
    finally:
        client.__exit__(None, None, None)


def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(app, force,
                                                                       monkeypatch, tmp_path):
    ca_path, _, ca = _cert(tmp_path, "Tocsin CoT CA", ca=True)
    cert, key, _ = _cert(tmp_path, "localhost", ca)
    device_cert, device_key, _ = _cert(tmp_path, "patrol1-phone", ca)
    rogue_cert, rogue_key, _ = _cert(tmp_path, "rogue")  # self-signed, not from the CA
    client, server = _start(app, monkeypatch, host="0.0.0.0", ca=str(ca_path),
                            cert=str(cert), key=str(key))
    try:
        assert server.refused is None and server.port
        op = make_operation(client, force)
        client.post(f"/api/v1/operations/{op.id}/positions", headers=op.cmd, json={"items": [
            {"op_unit_id": op.other_unit_id, "lat": LAT + 0.002, "lon": LON + 0.002}]})

        def connect(cert_file=None, key_file=None):
            ctx = ssl.create_default_context(cafile=str(ca_path))
            if cert_file:
                ctx.load_cert_chain(str(cert_file), str(key_file))
            raw = socket.create_connection(("127.0.0.1", server.port))
            return ctx.wrap_socket(raw, server_hostname="localhost")

        # the enrolled device sends its position and gets the picture back
        with connect(device_cert, device_key) as sock:
            sock.sendall(hand_event("ANDROID-patrol1", LAT + 0.005, LON + 0.005))
            assert _wait(lambda: server.stats["accepted"] == 1)
            assert [e.callsign for e in _read_events(sock, 1)] == ["BRAVO-2"]
        # no certificate, or one the CA did not sign: cut off, nothing ingested or sent
        for files in ((None, None), (rogue_cert, rogue_key)):
            with pytest.raises((ssl.SSLError, ConnectionError)), connect(*files) as sock:
                sock.sendall(hand_event("ANDROID-patrol1", LAT + 0.007, LON + 0.007))
                sock.settimeout(5)
                if not sock.recv(100):
                    raise ConnectionResetError("closed by the server")
        time.sleep(0.3)
        assert server.stats["accepted"] == 1
    finally:
        client.__exit__(None, None, None)
