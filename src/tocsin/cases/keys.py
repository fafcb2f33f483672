"""The typed entity model and the keys each entity puts in the index.

Key kinds: ``w`` (a word, full text), ``phone`` (E.164), ``email``, ``plate``
(canonical, OCR-confusables folded), ``vin``, ``doc`` (document number),
``serial`` (weapon), ``iban``, ``addr`` (normalised address), ``name`` (a name
word), ``phon`` (phonetic key of a name word), ``dob`` (ISO birth date) and
``pblk`` (a person's blocking key: phonetic surname + birth year) used to find
candidate persons for resolution.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tocsin.cases import normalize as N
from tocsin.core.errors import BadInput

ENTITY_TYPES: dict[str, tuple[str, ...]] = {
    "person": ("given_name", "family_name", "birth_date", "birth_place", "nationality",
               "aliases", "notes"),
    "vehicle": ("plate", "vin", "make", "model", "colour", "notes"),
    "phone": ("number", "notes"),
    "email": ("address", "notes"),
    "address": ("street", "postcode", "city", "country", "notes"),
    "document": ("doc_type", "number", "issuer", "notes"),
    "weapon": ("kind", "make", "serial", "notes"),
    "bank_account": ("iban", "bank", "holder", "notes"),
    "event": ("title", "date", "place", "description"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "person": ("family_name",), "vehicle": (), "phone": ("number",), "email": ("address",),
    "address": ("street",), "document": ("number",), "weapon": (), "bank_account": ("iban",),
    "event": ("title",),
}
LINK_TYPES = ("owns", "uses", "called", "met", "lives_at", "associate_of")
# Kinds that identify one thing: an exact match across cases is a hit.
HIT_KINDS = {"phone": 1.0, "email": 1.0, "vin": 1.0, "iban": 1.0, "doc": 1.0, "serial": 0.95,
             "plate": 0.9, "addr": 0.6}
MAX_PROP = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # below space, but for tab and newline


def clean_properties(etype: str, props: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise the properties of an entity of ``etype``; raise BadInput."""
    if etype not in ENTITY_TYPES:
        raise BadInput(f"unknown entity type {etype!r}", code="entity.type_unknown",
                       details={"allowed": sorted(ENTITY_TYPES)})
    allowed = ENTITY_TYPES[etype]
    unknown = set(props) - set(allowed)
    if unknown:
        raise BadInput(f"unknown properties for a {etype}: {sorted(unknown)}",
                       code="entity.property_unknown", details={"allowed": list(allowed)})
    out: dict[str, Any] = {}
    for name, value in props.items():
        if value is None or value == "" or value == []:
            continue
        if name == "aliases":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise BadInput("aliases must be a list of names", code="entity.property_invalid")
            value = [v.strip()[:200] for v in value if v.strip()][:20]
        elif not isinstance(value, str):
            raise BadInput(f"{name} must be text", code="entity.property_invalid")
        else:
            value = value.strip()
            if len(value) > MAX_PROP:
                raise BadInput(f"{name} is over {MAX_PROP} characters", code="entity.property_invalid")
            if _CONTROL.search(value):
                raise BadInput(f"{name} holds control characters", code="entity.property_invalid")
        out[name] = value
    for name in REQUIRED[etype]:
        if not out.get(name):
            raise BadInput(f"a {etype} needs a {name}", code="entity.property_missing")
    for name, parse in (("birth_date", N.birth_date), ("date", N.parse_date)):
        if name in out:
            d = parse(out[name])
            if d is None:
                raise BadInput(f"{name} is not a date (YYYY-MM-DD)", code="entity.date_invalid")
            out[name] = d.isoformat()
    if etype == "phone":
        e164 = N.phone(out["number"])
        if e164 is None:
            raise BadInput("not a phone number", code="entity.phone_invalid")
        out["e164"] = e164
    if etype == "email" and N.email(out["address"]) is None:
        raise BadInput("not an e-mail address", code="entity.email_invalid")
    if etype == "vehicle" and not (out.get("plate") or out.get("vin")):
        raise BadInput("a vehicle needs a plate or a VIN", code="entity.property_missing")
    if etype == "vehicle" and out.get("plate") and len(N.plate(out["plate"])) < 2:
        raise BadInput("not a plate", code="entity.plate_invalid")
    return out


def label_of(etype: str, p: dict[str, Any]) -> str:
    if etype == "person":
        name = " ".join(x for x in (p.get("given_name"), p.get("family_name", "").upper()) if x)
        return f"{name} ({p['birth_date']})" if p.get("birth_date") else name
    if etype == "vehicle":
        parts = [p.get("plate") or p.get("vin"), p.get("make"), p.get("model")]
        return " ".join(x for x in parts if x)
    if etype == "phone":
        return p["e164"]
    if etype == "email":
        return p["address"]
    if etype == "address":
        return ", ".join(x for x in (p.get("street"), p.get("postcode"), p.get("city")) if x)
    if etype == "document":
        return f"{p.get('doc_type', 'document')} {p['number']}"
    if etype == "weapon":
        return " ".join(x for x in (p.get("kind", "weapon"), p.get("make"), p.get("serial")) if x)
    if etype == "bank_account":
        return p["iban"]
    return p.get("title", etype)


def person_block(family_name: str, year: int | str) -> str:
    words = N.name_words(family_name)
    return f"{''.join(N.phonetic(w) for w in words)}|{year}"[:N.MAX_KEY]


def entity_keys(etype: str, p: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, key) pairs of an entity with cleaned properties; no duplicates."""
    keys: dict[tuple[str, str], None] = {}

    def add(kind: str, key: str | None) -> None:
        if key:
            keys.setdefault((kind, key[:N.MAX_KEY]), None)

    text_parts: list[str] = []
    for name, value in p.items():
        if name in ("e164",):
            continue
        text_parts.extend(value if isinstance(value, list) else [value])
    for w in N.words(" ".join(text_parts), limit=500):
        add("w", w)
    if etype == "person":
        names = [p.get("given_name", ""), p.get("family_name", ""), *p.get("aliases", [])]
        for w in N.name_words(" ".join(names)):
            add("name", w)
            add("phon", N.phonetic(w))
        if p.get("birth_date"):
            add("dob", p["birth_date"])
            add("pblk", person_block(p["family_name"], p["birth_date"][:4]))
    elif etype == "vehicle":
        if p.get("plate"):
            add("plate", N.plate(p["plate"]))
        if p.get("vin"):
            add("vin", N.ident(p["vin"]))
    elif etype == "phone":
        add("phone", p["e164"])
        add("w", p["e164"].lstrip("+"))
    elif etype == "email":
        add("email", N.email(p["address"]))
    elif etype == "address":
        add("addr", N.address([p.get("street", ""), p.get("postcode", ""), p.get("city", "")]))
    elif etype == "document":
        add("doc", N.ident(p["number"]))
    elif etype == "weapon":
        if p.get("serial"):
            add("serial", N.ident(p["serial"]))
    elif etype == "bank_account":
        add("iban", N.ident(p["iban"]))
    return list(keys)


def text_keys(texts: Iterable[str], limit: int = 20_000) -> list[tuple[str, str]]:
    return [("w", w) for w in N.words(" ".join(texts), limit=limit)]
