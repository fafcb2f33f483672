"""/api/v1/geo: search, reverse, parse-location on the bundled Helsinki data."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest

AML = ('A"ML=1;lt=+54.76397;lg=-0.18305;rd=50;top=20130717141935;lc=90;pm=W;'
       'si=123456789012345;ei=1234567890123456;mcc=234;mnc=30;ml=128')
AML_HTTPS = urlencode({
    "v": "3", "emergency_number": "112", "source": "call", "time": "1373983175000",
    "location_latitude": "60.16952", "location_longitude": "24.93545",
    "location_time": "1374071975000", "location_accuracy": "12.5", "location_source": "gps",
    "device_number": "+358400000000", "device_imei": "1234567890123456"})
PIDF_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>'
             '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
             'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
             'xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0" '
             'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr" '
             'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:caller@example.com">'
             '<dm:device id="phone"><gp:geopriv><gp:location-info>')
PIDF_TAIL = ('</gp:location-info><gp:usage-rules/><gp:method>GPS</gp:method></gp:geopriv>'
             '<dm:timestamp>2024-05-01T10:00:00Z</dm:timestamp></dm:device></presence>')
CIRCLE = ('<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>60.16952 24.93545</gml:pos>'
          '<gs:radius uom="urn:ogc:def:uom:EPSG::9001">35.5</gs:radius></gs:Circle>')
CIVIC = ('<ca:civicAddress xml:lang="fi"><ca:country>FI</ca:country><ca:A3>Helsinki</ca:A3>'
         '<ca:RD>Mannerheimintie</ca:RD><ca:HNO>5</ca:HNO><ca:PC>00100</ca:PC>'
         '</ca:civicAddress>')
BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                  '<presence>&lol3;</presence>')


@pytest.fixture
def h(client, force, geo):
    return force.headers(client, "calltaker")


def error_code(r, status: int = 422) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["code"]


def test_search_ranked_candidates_with_what_matched(client, h):
    r = client.get("/api/v1/geo/search?q=Mannerheimintie%205&limit=3", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "Mannerheimintie 5" and len(body["candidates"]) == 3
    best = body["candidates"][0]
    assert best["label"] == "Mannerheimintie 5, 00100 Helsinki" and best["kind"] == "address"
    assert best["housenumber"] == "5" and best["score"] == 1.0
    assert abs(best["lat"] - 60.16944) < 1e-4 and abs(best["lon"] - 24.93977) < 1e-4
    assert {"field": "housenumber", "how": "exact"}.items() <= best["matched"][-1].items()
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True)
    # a typo is tolerated and said so
    typo = client.get("/api/v1/geo/search?q=Manerheimintie%205", headers=h).json()
    assert typo["candidates"][0]["label"] == "Mannerheimintie 5, 00100 Helsinki"
    assert any(m["how"] == "fuzzy" for m in typo["candidates"][0]["matched"])


def test_autocomplete_and_near(client, h):
    r = client.get("/api/v1/geo/search?q=mannerh&autocomplete=true&limit=5", headers=h)
    labels = [c["label"] for c in r.json()["candidates"]]
    assert "Mannerheimintie, 00100 Helsinki" in labels
    assert r.json()["candidates"][0]["matched"][0]["how"] == "prefix"
    typed = client.get("/api/v1/geo/search?q=mannerh", headers=h).json()["candidates"]
    assert all(m["how"] != "prefix" for c in typed for m in c["matched"])
    near = client.get("/api/v1/geo/search?q=Kaivokatu&lat=60.1705&lon=24.9410", headers=h)
    assert near.status_code == 200 and near.json()["candidates"]


def test_reverse_nearest_address_and_street_with_distance(client, h):
    r = client.get("/api/v1/geo/reverse?lat=60.1699&lon=24.9384", headers=h)
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["address"]["label"].startswith("Mannerheimintie")
    assert 0 < res["address"]["distance_m"] < 100
    assert res["street"]["street"] == "Kaivokatu" and res["street"]["distance_m"] < 5
    off_map = client.get("/api/v1/geo/reverse?lat=48.8566&lon=2.3522", headers=h).json()
    assert off_map == {"address": None, "street": None}
    wide = client.get("/api/v1/geo/reverse?lat=60.1699&lon=24.9384&radius_m=5", headers=h)
    assert wide.json()["address"] is None and wide.json()["street"] is not None


def test_parse_location_aml_https_pidf(client, h):
    r = client.post("/api/v1/geo/parse-location", headers=h, content=AML)
    assert r.status_code == 200, r.text
    loc = r.json()
    assert (loc["lat"], loc["lon"], loc["radius_m"], loc["source"], loc["method"]) == \
        (54.76397, -0.18305, 50.0, "aml-sms", "WiFi")
    assert "stale" in loc["flags"] and "extra" not in loc  # no IMEI/IMSI in the answer
    assert "123456789012345" not in r.text
    r = client.post("/api/v1/geo/parse-location", json={"text": AML}, headers=h)
    assert r.status_code == 200 and r.json()["source"] == "aml-sms"
    r = client.post("/api/v1/geo/parse-location", content=AML_HTTPS, headers={
        **h, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "aml-https" and r.json()["radius_m"] == 12.5
    assert "+358400000000" not in r.text
    r = client.post("/api/v1/geo/parse-location", content=PIDF_HEAD + CIRCLE + PIDF_TAIL,
                    headers={**h, "Content-Type": "application/pidf+xml"})
    assert r.status_code == 200, r.text
    assert (r.json()["shape"], r.json()["radius_m"], r.json()["geocoded"]) == ("circle", 35.5,
                                                                              None)
    # a civic address alone is placed by the geocoder
    r = client.post("/api/v1/geo/parse-location", content=PIDF_HEAD + CIVIC + PIDF_TAIL,
                    headers={**h, "Content-Type": "application/pidf+xml"})
    assert r.status_code == 200, r.text
    loc = r.json()
    assert loc["lat"] is None and "civic_only" in loc["flags"]
    assert loc["civic_text"] == "5 Mannerheimintie, 00100 Helsinki"
    assert loc["geocoded"]["street"] == "Mannerheimintie" and loc["geocoded"]["housenumber"] == "5"


BROKEN = [
    (AML.replace("ml=128", "ml=12"), "aml.length_mismatch"),
    ('A"ML=1;lt=+54.76397;lg=;ml=22', "aml."),
    (AML.replace("lt=+54.76397", "lt=+154.76397").replace("ml=128", "ml=129"), "aml."),
    ((PIDF_HEAD + CIRCLE + PIDF_TAIL)[:-40], "pidf.xml_malformed"),
    (BILLION_LAUGHS, "pidf.xml_unsafe"),
    ("hello", "input.unknown_format"),
    ("", "input.empty"),
    ("<presence>" + "<a>" * 30_000, "input.too_long"),
    (b"\xff\xfe\x00garbage", "input.encoding"),
]


@pytest.mark.timeout(30)  # hostile XML must not hang
def test_parse_location_refuses_broken_and_hostile(client, h):
    for body, reason in BROKEN:
        r = client.post("/api/v1/geo/parse-location", content=body,
                        headers={**h, "Content-Type": "text/plain"})
        assert error_code(r) == "geo.location_unreadable", body[:40]
        assert r.json()["error"]["details"]["reason"].startswith(reason), body[:40]


def test_parse_location_json_body_must_hold_text(client, h):
    for body in ('{"txt": "x"}', "[1]", "{not json", '{"text": 5}'):
        r = client.post("/api/v1/geo/parse-location", content=body,
                        headers={**h, "Content-Type": "application/json"})
        assert error_code(r) == "geo.bad_body", body


def test_authentication_required(client, force, geo):
    for r in (client.get("/api/v1/geo/search?q=Mannerheimintie"),
              client.get("/api/v1/geo/reverse?lat=60.17&lon=24.94"),
              client.post("/api/v1/geo/parse-location", content=AML),
              client.get("/api/v1/geo/search?q=x", headers={"Authorization": "Bearer nope"})):
        assert r.status_code == 401 and r.json()["error"]["code"].startswith("token_")


BAD_SEARCHES = [
    ("", "geo.query_empty"),
    ("q=", "geo.query_empty"),
    ("q=%20%20%20", "geo.query_empty"),
    ("q=" + "a" * 1001, "geo.query_too_long"),
    ("q=" + "Mannerheimintie%205%20" * 500, "geo.query_too_long"),  # about 10 kB
    ("q=Mannerheimintie%005", "geo.query_control_character"),
    ("q=Manner%1B%5B2Jheimintie", "geo.query_control_character"),
    ("q=Manner%C2%85heimintie", "geo.query_control_character"),  # C1 NEL
    ("q=Mannerheimintie&limit=0", "geo.bad_limit"),
    ("q=Mannerheimintie&limit=101", "geo.bad_limit"),
    ("q=Mannerheimintie&limit=many", "invalid_input"),
    ("q=Mannerheimintie&lat=60.17", "geo.bad_coordinates"),
    ("q=Mannerheimintie&lat=91&lon=24.9", "geo.bad_coordinates"),
    ("q=Mannerheimintie&lat=nan&lon=24.9", "geo.bad_coordinates"),
]


def test_search_bad_input(client, h):
    for query, code in BAD_SEARCHES:
        r = client.get(f"/api/v1/geo/search?{query}", headers=h)
        assert error_code(r) == code, query[:60]


def test_search_accepts_a_tab_and_a_long_but_legal_query(client, h):
    r = client.get("/api/v1/geo/search?q=" + quote("Mannerheimintie\t5"), headers=h)
    assert r.json()["candidates"][0]["label"] == "Mannerheimintie 5, 00100 Helsinki"
    r = client.get("/api/v1/geo/search?q=" + quote("Mannerheimintie 5 " + "x" * 900),
                   headers=h)
    assert r.status_code == 200


BAD_POINTS = [
    "", "lat=60.17", "lon=24.9", "lat=90.0001&lon=24.9", "lat=-91&lon=0", "lat=60&lon=180.5",
    "lat=60&lon=-181", "lat=nan&lon=24.9", "lat=60.17&lon=NaN", "lat=inf&lon=24.9",
    "lat=60.17&lon=-Infinity",
]


def test_reverse_bad_coordinates(client, h):
    for query in BAD_POINTS:
        r = client.get(f"/api/v1/geo/reverse?{query}", headers=h)
        assert error_code(r) == "geo.bad_coordinates", query


def test_reverse_bad_radius_and_non_numbers(client, h):
    for q in ("radius_m=0", "radius_m=-5", "radius_m=nan", "radius_m=1e9"):
        r = client.get(f"/api/v1/geo/reverse?lat=60.17&lon=24.94&{q}", headers=h)
        assert error_code(r) == "geo.bad_radius", q
    assert error_code(client.get("/api/v1/geo/reverse?lat=abc&lon=24.9", headers=h)) == \
        "invalid_input"


def test_dispatch_address_routes_share_the_geo_checks(client, h):
    geo = client.get("/api/v1/geo/search?q=Mannerheimintie%205&autocomplete=true&limit=4",
                     headers=h).json()["candidates"]
    disp = client.get("/api/v1/dispatch/addresses?q=Mannerheimintie%205&limit=4", headers=h)
    assert disp.status_code == 200 and disp.json() == geo
    r = client.get("/api/v1/dispatch/addresses?q=Manner%00heimintie", headers=h)
    assert error_code(r) == "geo.query_control_character"
    assert error_code(client.get("/api/v1/dispatch/addresses?q=", headers=h)) == \
        "geo.query_empty"
    r = client.get("/api/v1/dispatch/reverse?lat=nan&lon=24.9", headers=h)
    assert error_code(r) == "geo.bad_coordinates"
    r = client.get("/api/v1/dispatch/reverse?lat=60.1699&lon=24.9384", headers=h)
    assert r.json() == client.get("/api/v1/geo/reverse?lat=60.1699&lon=24.9384",
                                  headers=h).json()
    # dispatch still refuses a point off its map
    r = client.get("/api/v1/dispatch/reverse?lat=48.8566&lon=2.3522", headers=h)
    assert error_code(r) == "dispatch.outside_map"
