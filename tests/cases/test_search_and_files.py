"""Fielded and full-text search (phonetics, date tolerance, plate wildcards and OCR
confusables, phones in any format, facets), hostile queries, attachments and their
defences, the link chart, watches."""

from __future__ import annotations

import io
import zipfile
import zlib

import pytest

from tests.cases.helpers import add, link, new_case, search


@pytest.fixture
def h1(client, force):
    return force.headers(client, "inv1")


@pytest.fixture
def case1(client, h1):
    cid = new_case(client, h1, "Trafic de stupéfiants", summary="livraisons nocturnes")
    add(client, h1, cid, "person", given_name="Jean", family_name="Dupont",
        birth_date="1984-03-12")
    add(client, h1, cid, "person", given_name="Léa", family_name="Lefèvre",
        birth_date="1990-11-05")
    add(client, h1, cid, "vehicle", plate="AB-123-CD", make="Peugeot")
    add(client, h1, cid, "phone", number="06 12 34 56 78")
    add(client, h1, cid, "bank_account", iban="FR76 3000 6000 0112 3456 7890 189")
    return cid


def test_names_by_sound_dates_with_tolerance(client, h1, case1):
    assert search(client, h1, name="Dupond")["total"] == 1
    assert search(client, h1, name="lefebvre")["results"][0]["label"].startswith("Léa")
    assert search(client, h1, birth_date="1984-03-15")["total"] == 0
    assert search(client, h1, birth_date="1984-03-15", dob_tolerance_days=5)["total"] == 1
    assert search(client, h1, birth_date="12/03/1984")["total"] == 1
    # day and month swapped on a form
    assert search(client, h1, birth_date="1990-05-11")["total"] == 1
    both = search(client, h1, name="Dupont", birth_date="1990-11-05")
    assert both["total"] == 0  # criteria are combined (AND)


def test_plates_wildcards_and_confusables_phones_any_format(client, h1, case1):
    for plate in ("AB123CD", "ab-123-cd", "A8-I23-CD", "AB-1?3-C*", "*123CD", "AB-12*"):
        assert search(client, h1, plate=plate)["total"] == 1, plate
    assert search(client, h1, plate="AB-124-CD")["total"] == 0
    for phone in ("0612345678", "+33 6 12 34 56 78", "0033612345678", "06.12.34.56.78"):
        assert search(client, h1, phone=phone)["total"] == 1, phone
    assert search(client, h1, iban="fr7630006000011234567890189")["total"] == 1


def test_full_text_facets_and_types(client, h1, case1):
    r = search(client, h1, q="stupefiants")  # accents folded
    assert r["total"] == 1 and r["results"][0]["type"] == "case"
    r = search(client, h1, q="peugeot")
    assert r["facets"]["type"] == {"vehicle": 1} and r["facets"]["status"] == {"open": 1}
    assert r["facets"]["unit"] == {"D11": 1}
    assert search(client, h1, q="noct*")["total"] == 1
    assert search(client, h1, q="peugeot", types=["person"])["total"] == 0


@pytest.mark.parametrize("q", [
    'peugeot" OR "1"="1', "peugeot) OR (a", "NEAR(peugeot dupont)", "peugeot*  -dupont",
    "title:peugeot", "peugeot'; DROP TABLE cases; --", "^peugeot", "{peugeot}",
])
def test_injection_is_just_words(client, h1, case1, q):
    r = client.post("/api/v1/cases/search", json={"q": q}, headers=h1)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        # no operator: every word must match, so no query widens the result
        assert r.json()["total"] <= 1
    assert search(client, h1, q="peugeot")["total"] == 1  # still there


@pytest.mark.parametrize("crit,code", [
    ({"q": "*"}, "search.wildcard_too_broad"), ({"q": "a*"}, "search.wildcard_too_broad"),
    ({"plate": "*1*"}, "search.wildcard_too_broad"), ({"phone": "12"}, "search.phone_invalid"),
    ({}, "search.empty"), ({"q": "\"'()"}, "search.empty"),
    ({"birth_date": "yesterday"}, "search.date_invalid"),
    ({"q": "a b c d e f g h i j k l"}, "search.empty"),
    ({"q": "aa bb cc dd ee ff gg hh ii"}, "search.too_many_terms"),
])
def test_bad_queries_are_clear_errors(client, h1, case1, crit, code):
    r = client.post("/api/v1/cases/search", json=crit, headers=h1)
    assert r.status_code == 422 and r.json()["error"]["code"] == code


def _pdf(text: str, extra: bytes = b"") -> bytes:
    stream = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
             b"/Resources << /Font << /F1 5 0 R >> >> >>"),
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>" + extra]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1,
                                                                            xref)
    return bytes(out)


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buf, "PNG")
    return buf.getvalue()


def _upload(client, h, cid, name, data):
    return client.post(f"/api/v1/cases-upload/{cid}?filename={name}", content=data, headers=h)


def test_attachments_text_extracted_and_searchable(client, h1, case1):
    r = _upload(client, h1, case1, "rapport.pdf", _pdf("Livraison au hangar Kervadec"))
    assert r.status_code == 201, r.text
    assert "Kervadec" in r.json()["text_excerpt"]
    assert _upload(client, h1, case1, "notes.txt", "rendez-vous à Brest".encode()).status_code \
        == 201
    assert _upload(client, h1, case1, "photo.png", _png()).status_code == 201
    assert search(client, h1, q="kervadec")["results"][0]["type"] == "attachment"
    assert search(client, h1, q="brest")["total"] == 1
    att = r.json()["id"]
    dl = client.get(f"/api/v1/cases/{case1}/attachments/{att}", headers=h1)
    assert dl.status_code == 200 and dl.content.startswith(b"%PDF")
    assert dl.headers["content-disposition"].startswith("attachment")


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.txt", b"\0" * 50_000_000)
    return buf.getvalue()


@pytest.mark.parametrize("name,data,code", [
    ("bomb.zip", _zip_bomb(), "attachment.archive"),
    ("bomb.txt", _zip_bomb(), "attachment.archive"),
    ("x.gz", b"\x1f\x8b" + zlib.compress(b"\0" * 1_000_000), "attachment.archive"),
    ("poly.pdf", _pdf("hi") + _zip_bomb(), "attachment.polyglot"),
    ("poly.png", _png() + b"<html><script>alert(1)</script></html>", "attachment.polyglot"),
    ("poly.png", _png() + b"x" * 100, "attachment.polyglot"),
    ("evil.pdf", _pdf("hi", b" /OpenAction << /S /JavaScript /JS (app.alert(1)) >>"),
     "attachment.active_content"),
    ("report.pdf", b"hello, plain text", "attachment.type_mismatch"),
    ("photo.jpg", _pdf("hi"), "attachment.type_mismatch"),
    ("tool.txt", b"MZ\x90\x00\x03", "attachment.unsupported"),
    ("blob.bin", bytes(range(256)) * 10, "attachment.unsupported"),
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "attachment.damaged"),
    ("broken.pdf", b"%PDF-1.4\n garbage", "attachment.damaged"),
    ("../../etc/passwd.txt", b"hi", "attachment.bad_name"),
    ("empty.txt", b"", "attachment.empty"),
])
def test_hostile_files_are_refused_and_nothing_is_kept(client, force, h1, case1, name, data,
                                                        code):
    r = _upload(client, h1, case1, name, data)
    assert r.status_code in (413, 422), r.text
    assert r.json()["error"]["code"] == code
    assert client.get(f"/api/v1/cases/{case1}", headers=h1).json()["attachments"] == []
    media = force.runtime.settings.resolved_media_dir / "cases"
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_gigantic_attachment_is_refused_while_streaming(client, h1, case1):
    from tocsin.cases.files import MAX_ATTACHMENT

    def chunks():
        block = b"a" * (1 << 20)
        for _ in range(MAX_ATTACHMENT // len(block) + 3):
            yield block

    r = client.post(f"/api/v1/cases-upload/{case1}?filename=big.txt", content=chunks(),
                    headers=h1)
    assert r.status_code == 413
    r = client.post(f"/api/v1/cases-upload/{case1}?filename=big.txt", content=b"x",
                    headers={**h1, "Content-Length": str(MAX_ATTACHMENT * 2)})
    assert r.status_code == 413


def test_link_chart_neighbours_path_cycles_timeline(client, h1):
    cid = new_case(client, h1)
    a = add(client, h1, cid, "person", family_name="Alpha")["id"]
    b = add(client, h1, cid, "person", family_name="Bravo")["id"]
    c = add(client, h1, cid, "person", family_name="Charlie")["id"]
    d = add(client, h1, cid, "phone", number="0600000001")["id"]
    e = add(client, h1, cid, "event", title="Meeting", date="2026-01-05")["id"]
    link(client, h1, cid, a, b, start_date="2025-01-01")
    link(client, h1, cid, b, c, start_date="2025-06-01")
    link(client, h1, cid, c, a)  # a cycle
    link(client, h1, cid, c, d, "uses")
    link(client, h1, cid, d, e, "called")
    full = client.get(f"/api/v1/cases/{cid}/chart", headers=h1).json()
    assert len(full["nodes"]) == 5 and len(full["links"]) == 5
    near = client.get(f"/api/v1/cases/{cid}/chart?entity_id={a}&depth=1", headers=h1).json()
    assert {n["id"] for n in near["nodes"]} == {a, b, c}
    path = client.get(f"/api/v1/cases/{cid}/chart?entity_id={a}&path_to={e}", headers=h1).json()
    assert path["path"]["nodes"] == [a, c, d, e]
    assert [t["date"] for t in full["timeline"]] == ["2025-01-01", "2025-06-01", "2026-01-05"]
    bad = client.post(f"/api/v1/cases/{cid}/links", json={"source_id": a, "target_id": a,
                                                         "type": "met"}, headers=h1)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "link.circular"
    dup = client.post(f"/api/v1/cases/{cid}/links", json={"source_id": b, "target_id": a,
                                                         "type": "associate_of"}, headers=h1)
    assert dup.status_code == 409
    other = new_case(client, h1)
    x = add(client, h1, other, "person", family_name="Xray")["id"]
    cross = client.post(f"/api/v1/cases/{cid}/links", json={"source_id": a, "target_id": x,
                                                           "type": "met"}, headers=h1)
    assert cross.status_code == 422 and cross.json()["error"]["code"] == "link.bad_end"


def test_watch_alerts_owner_with_unit_only(client, force, h1):
    from fastapi.testclient import TestClient  # noqa: F401

    h2 = force.headers(client, "inv2")
    r = client.post("/api/v1/cases/watches", json={"kind": "plate", "value": "GH 789 IJ"},
                    headers=h1)
    assert r.status_code == 201
    pw = client.post("/api/v1/cases/watches", json={"kind": "person", "family_name": "Moreau",
                     "given_name": "Paul", "birth_date": "1975-04-04"}, headers=h1)
    assert pw.status_code == 201
    token = force.login(client, "inv1")["access_token"]
    with client.websocket_connect("/api/v1/live") as ws:
        ws.send_json({"type": "auth", "access_token": token})
        assert ws.receive_json()["type"] == "ready"
        c2 = new_case(client, h2, "Fraud ring")
        add(client, h2, c2, "vehicle", plate="GH-789-1J")  # OCR confusion of I and 1
        add(client, h2, c2, "person", given_name="Paul", family_name="Moreau",
            birth_date="1975-04-04")
        got = []
        while len(got) < 2:
            msg = ws.receive_json()
            if msg["event"]["type"] == "cases.watch.alert":
                got.append(msg["event"])
    assert {g["payload"]["other"]["unit_code"] for g in got} == {"D21"}
    alerts = client.get("/api/v1/cases/watch-alerts", headers=h1).json()
    assert len(alerts) == 2 and all(not a["other_access"] for a in alerts)
    assert "Fraud" not in str(alerts)
    req = client.post("/api/v1/cases/access-requests",
                      json={"alert_id": alerts[0]["id"], "reason": "my watch fired"}, headers=h1)
    assert req.status_code == 201
