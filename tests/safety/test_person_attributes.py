"""Identity records carry an address, an identity number and birth (maiden) and usage
names, each with its provenance, and the resolution uses them."""

from __future__ import annotations


def post(client, h, body, user="patrol1", person_id=None):
    url = "/api/v1/safety/persons" + (f"/{person_id}/records" if person_id else "")
    return client.post(url, json=body, headers=h(user))


def added(client, h, body, **kw):
    r = post(client, h, body, **kw)
    assert r.status_code == 201, r.text
    return r.json()


def levels(explanation):
    return {row["field"]: row["level"] for row in explanation}


def test_new_attributes_are_kept_with_their_provenance(client, h, force):
    a = added(client, h, {"source": "rms", "source_ref": "R-1", "given_names": "Sophie",
                          "surname": "Martin", "birth_name": "Dupont", "birth_date": "1975-06-01",
                          "address": "12 rue des Lilas, Lyon", "id_number": "1234 5678 9012"})
    added(client, h, {"source": "civil_registry", "given_names": "Sophie", "surname": "Dupont",
                      "usage_name": "Martin", "birth_date": "01/06/1975",
                      "address": "3 place Bellecour, Lyon"}, person_id=a["person_id"])
    page = client.get(f"/api/v1/safety/persons/{a['person_id']}", headers=h("patrol1")).json()
    attrs = {k: {v["value"]: [s["source"] for s in v["sources"]] for v in vals}
             for k, vals in page["attributes"].items()}
    assert attrs["address"] == {"12 rue des Lilas, Lyon": ["rms"],
                                "3 place Bellecour, Lyon": ["civil_registry"]}
    assert attrs["id_number"] == {"123456789012": ["rms"]}  # canonical form
    assert attrs["birth_name"] == {"Dupont": ["rms"]}
    assert attrs["usage_name"] == {"Martin": ["civil_registry"]}
    assert attrs["surname"] == {"Martin": ["rms"], "Dupont": ["civil_registry"]}
    rms = next(r for r in page["records"] if r["source"] == "rms")
    assert rms["birth_name"] == "Dupont" and rms["id_number"] == "123456789012"


def test_resolution_uses_the_identity_number(client, h, force):
    first = added(client, h, {"source": "rms", "given_names": "Fatima", "surname": "Benali",
                              "id_number": "1234 5678 9012"})
    second = added(client, h, {"source": "border", "given_names": "Fatma",
                               "surname": "Benhali", "id_number": "123456789012"})
    (sugg,) = second["suggestions"]
    assert sugg["person_ids"] == sorted([first["person_id"], second["person_id"]])
    assert levels(sugg["explanation"])["id_number"] == "exact"


def test_resolution_uses_the_address(client, h, force):
    first = added(client, h, {"source": "rms", "given_names": "Jean", "surname": "Moreau",
                              "birth_date": "1960", "address": "12 rue des Lilas, Lyon"})
    second = added(client, h, {"source": "traffic", "given_names": "Jean", "surname": "Moreau",
                               "birth_date": "1961", "address": "12 r. des lilas lyon"})
    sugg = next(x for x in second["suggestions"] if first["person_id"] in x["person_ids"])
    assert levels(sugg["explanation"])["address"] == "exact"


def test_a_person_is_found_by_her_birth_name_and_by_her_usage_name(client, h, force):
    married = added(client, h, {"source": "rms", "given_names": "Sophie", "surname": "Martin",
                                "birth_name": "Dupont"})["person_id"]
    found = client.get("/api/v1/safety/persons?given_names=Sophie&surname=Dupont",
                       headers=h("patrol1")).json()["results"]
    assert [x["id"] for x in found] == [married]
    assert levels(found[0]["explanation"])["surname"] == "birth/usage name or swapped"
    maiden = added(client, h, {"source": "rms", "given_names": "Claire", "surname": "Lefèvre",
                               "usage_name": "Bernard", "birth_date": "1980"})["person_id"]
    r = client.post("/api/v1/safety/briefing", headers=h("patrol1"), json={
        "lat": 60.17, "lon": 24.94,
        "expected": [{"given_names": "Claire", "surname": "Bernard", "birth_date": "1980"}]})
    assert r.status_code == 200, r.text
    assert r.json()["expected"][0]["person_ids"] == [maiden]


def test_bad_new_attributes_are_refused_and_duplicates_still_caught(client, h, force):
    base = {"source": "rms", "given_names": "Jean", "surname": "Dupont"}
    r = post(client, h, {**base, "id_number": "--"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "safety.record.bad_id_number"
    r = post(client, h, {**base, "address": "!!!"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "safety.record.bad_address"
    r = post(client, h, {**base, "birth_name": "Dupоnt"})  # Cyrillic о in a Latin word
    assert r.status_code == 422 and "mixes scripts" in r.text
    r = post(client, h, {**base, "usage_name": "x" * 250})
    assert r.status_code == 422
    added(client, h, {**base, "id_number": "AB 123"})
    added(client, h, {**base, "id_number": "AB 124"})  # says something else: not a duplicate
    r = post(client, h, {**base, "id_number": "ab123"})  # the same, written otherwise
    assert r.status_code == 409 and r.json()["error"]["code"] == "safety.record.duplicate"
