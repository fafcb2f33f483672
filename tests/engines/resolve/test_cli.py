from __future__ import annotations

import argparse
import csv

import pytest

from tocsin.commands import resolve


def read_rows(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tocsin")
    resolve.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def write(path, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return str(path)


HEAD = ["ident", "nom", "prenom", "ddn", "tel", "ville"]
ROWS = [["1", "Dupont", "Jean-Pierre", "04/03/1981", "06 12 34 56 78", "Brest"],
        ["2", "DUPOND", "Jean Pierre", "1981-03-04", "+33612345678", "Brest"],
        ["3", "Martin", "Marie", "12/12/1990", "", "Lyon"],
        ["4", "Kerhervé", "Anne", "1975", "0298000000", "Quimper"]]
MAP = "ident=id,nom=surname,prenom=given_name,ddn=date_of_birth,tel=phone,ville=city"


def test_dedupe(tmp_path, capsys):
    src = write(tmp_path / "p.csv", [HEAD] + ROWS, delimiter=";")
    out = tmp_path / "pairs.csv"
    clusters = tmp_path / "clusters.csv"
    assert run(["resolve", "dedupe", src, "--out", str(out), "--map", MAP,
                "--clusters", str(clusters)]) == 0
    rows = read_rows(out)
    assert [(r["id_a"], r["id_b"]) for r in rows] == [("1", "2")]
    assert 0.5 <= float(rows[0]["score"]) <= 1.0
    err = capsys.readouterr().err
    assert "read 4 records" in err and "1 matches" in err
    assert {"cluster": "1", "id": "1"} in read_rows(clusters)


def test_link(tmp_path, capsys):
    a = write(tmp_path / "a.csv", [HEAD] + ROWS[:1] + ROWS[2:3])
    b = write(tmp_path / "b.csv", [HEAD] + [["9"] + ROWS[1][1:], ["8"] + ROWS[3][1:]])
    out = tmp_path / "pairs.csv"
    assert run(["resolve", "link", a, b, "--out", str(out), "--map", MAP,
                "--threshold", "0.4"]) == 0
    rows = read_rows(out)
    assert [(r["id_a"], r["id_b"]) for r in rows] == [("1", "9")]
    assert "read 2 + 2 records" in capsys.readouterr().err


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file"), ("no_id", "no 'id' column"), ("bad_map", "unknown canonical"),
    ("dup", "duplicate record id"), ("empty", "empty file"), ("threshold", "--threshold"),
    ("map_source", "not in the file"),
])
def test_bad_input_exits_2(tmp_path, capsys, case, message):
    good = write(tmp_path / "good.csv", [["id", "surname"], ["1", "A"], ["2", "B"]])
    argv = ["resolve", "dedupe", good, "--out", str(tmp_path / "o.csv")]
    if case == "missing":
        argv[2] = str(tmp_path / "nope.csv")
    elif case == "no_id":
        argv[2] = write(tmp_path / "x.csv", [["name"], ["A"]])
    elif case == "bad_map":
        argv += ["--map", "surname=lastname"]
    elif case == "dup":
        argv[2] = write(tmp_path / "x.csv", [["id", "surname"], ["1", "A"], ["1", "B"]])
    elif case == "empty":
        (tmp_path / "x.csv").write_text("")
        argv[2] = str(tmp_path / "x.csv")
    elif case == "threshold":
        argv += ["--threshold", "high"]
    elif case == "map_source":
        argv += ["--map", "nom=surname"]
    assert run(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
