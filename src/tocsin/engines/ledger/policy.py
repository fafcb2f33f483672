"""Witness trust policy in the style of c2sp.org/tlog-policy.

A policy lists known logs, known witnesses (a local name, a cosignature vkey,
an optional submission URL), witness groups with thresholds, and the
quorum.  The text format is the tlog-policy one::

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> all|any|<k> <member>...
    quorum <name>|none

:func:`check_quorum` says whether a signed checkpoint is signed by one of the
policy's logs (when any are listed) and cosigned according to the quorum.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from . import note as _note
from .checkpoint import Checkpoint, CheckpointError, open_checkpoint

__all__ = [
    "Group",
    "LogKey",
    "Policy",
    "PolicyError",
    "QuorumResult",
    "Witness",
    "check_quorum",
    "evaluate_quorum",
]


class PolicyError(ValueError):
    """The policy text or definition is invalid."""


@dataclass(frozen=True)
class LogKey:
    vkey: str
    url: str | None = None


@dataclass(frozen=True)
class Witness:
    name: str
    vkey: str
    url: str | None = None

    @property
    def verifier(self) -> _note.Verifier:
        return _note.parse_vkey(self.vkey)


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass
class Policy:
    witnesses: dict[str, Witness] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    quorum: str = "none"
    logs: list[LogKey] = field(default_factory=list)

    # -- construction

    @classmethod
    def simple(cls, witnesses: Iterable[Witness | tuple[str, str] | tuple[str, str, str]],
               quorum: int, logs: Iterable[str] = ()) -> Policy:
        """``quorum`` of the given witnesses must cosign (0 means none)."""
        p = cls(logs=[LogKey(v) for v in logs])
        for w in witnesses:
            w = w if isinstance(w, Witness) else Witness(*w)
            p.add_witness(w)
        n = len(p.witnesses)
        if not 0 <= quorum <= n:
            raise PolicyError(f"quorum {quorum} is not between 0 and the {n} witnesses")
        if quorum:
            p.add_group(Group("quorum", quorum, tuple(p.witnesses)))
            p.quorum = "quorum"
        return p

    def add_witness(self, w: Witness) -> None:
        if w.name in self.witnesses or w.name in self.groups or w.name == "none":
            raise PolicyError(f"name {w.name!r} is already defined")
        try:
            v = _note.parse_vkey(w.vkey)
        except ValueError as exc:
            raise PolicyError(f"witness {w.name}: {exc}") from None
        if v.sig_type != _note.SIG_COSIGNATURE_V1:
            raise PolicyError(f"witness {w.name}: vkey must have signature type 0x04")
        for other in self.witnesses.values():
            if other.verifier.public_key == v.public_key:
                raise PolicyError(f"witness {w.name} duplicates the key of {other.name}")
        self.witnesses[w.name] = w

    def add_group(self, g: Group) -> None:
        if g.name in self.witnesses or g.name in self.groups or g.name == "none":
            raise PolicyError(f"name {g.name!r} is already defined")
        if not g.members:
            raise PolicyError(f"group {g.name} has no members")
        if len(set(g.members)) != len(g.members):
            raise PolicyError(f"group {g.name} lists a member twice")
        for m in g.members:
            if m not in self.witnesses and m not in self.groups:
                raise PolicyError(f"group {g.name}: {m!r} is not defined on an earlier line")
        if not 1 <= g.threshold <= len(g.members):
            raise PolicyError(f"group {g.name}: threshold {g.threshold} not in 1..{len(g.members)}")
        self.groups[g.name] = g

    @classmethod
    def parse(cls, text: str) -> Policy:
        p = cls()
        quorum: str | None = None
        for lineno, raw in enumerate(text.split("\n"), 1):
            line = raw.strip(" \t")
            if not line or line.startswith("#"):
                continue
            words = line.replace("\t", " ").split()
            kw, args = words[0], words[1:]
            where = f"line {lineno}"
            if kw == "log":
                if len(args) not in (1, 2):
                    raise PolicyError(f"{where}: log <vkey> [<url>]")
                try:
                    v = _note.parse_vkey(args[0])
                except ValueError as exc:
                    raise PolicyError(f"{where}: {exc}") from None
                if any(_note.parse_vkey(lk.vkey).public_key == v.public_key for lk in p.logs):
                    raise PolicyError(f"{where}: duplicate log key")
                p.logs.append(LogKey(args[0], args[1] if len(args) == 2 else None))
            elif kw == "witness":
                if len(args) not in (2, 3):
                    raise PolicyError(f"{where}: witness <name> <vkey> [<url>]")
                try:
                    p.add_witness(Witness(args[0], args[1], args[2] if len(args) == 3 else None))
                except PolicyError as exc:
                    raise PolicyError(f"{where}: {exc}") from None
            elif kw == "group":
                if len(args) < 3:
                    raise PolicyError(f"{where}: group <name> all|any|<k> <member>...")
                name, k, members = args[0], args[1], tuple(args[2:])
                if k == "all":
                    threshold = len(members)
                elif k == "any":
                    threshold = 1
                elif k.isdigit():
                    threshold = int(k)
                else:
                    raise PolicyError(f"{where}: threshold {k!r} is not all, any or a number")
                try:
                    p.add_group(Group(name, threshold, members))
                except PolicyError as exc:
                    raise PolicyError(f"{where}: {exc}") from None
            elif kw == "quorum":
                if quorum is not None:
                    raise PolicyError(f"{where}: a policy has exactly one quorum line")
                if len(args) != 1:
                    raise PolicyError(f"{where}: quorum <name>")
                if args[0] != "none" and args[0] not in p.witnesses and args[0] not in p.groups:
                    raise PolicyError(f"{where}: quorum {args[0]!r} is not defined earlier")
                quorum = args[0]
            else:
                raise PolicyError(f"{where}: unknown keyword {kw!r}")
        if quorum is None:
            raise PolicyError("policy has no quorum line")
        p.quorum = quorum
        return p

    def format(self) -> str:
        out = [f"log {lk.vkey}" + (f" {lk.url}" if lk.url else "") for lk in self.logs]
        out += [f"witness {w.name} {w.vkey}" + (f" {w.url}" if w.url else "")
                for w in self.witnesses.values()]
        out += [f"group {g.name} {g.threshold} {' '.join(g.members)}"
                for g in self.groups.values()]
        out.append(f"quorum {self.quorum}")
        return "\n".join(out) + "\n"

    # -- evaluation

    def satisfied_by(self, cosigned: set[str], name: str | None = None) -> bool:
        name = self.quorum if name is None else name
        if name == "none":
            return True
        if name in self.witnesses:
            return name in cosigned
        g = self.groups[name]
        return sum(self.satisfied_by(cosigned, m) for m in g.members) >= g.threshold


@dataclass
class QuorumResult:
    ok: bool
    reason: str
    checkpoint: Checkpoint | None = None
    cosigned_by: set[str] = field(default_factory=set)


def evaluate_quorum(signed_checkpoint: str | bytes, policy: Policy) -> QuorumResult:
    """Check a signed checkpoint against ``policy``, saying why it fails."""
    try:
        parsed = _note.parse_note(signed_checkpoint)
        cp = Checkpoint.parse(parsed.text)
    except (_note.MalformedNote, CheckpointError) as exc:
        return QuorumResult(False, f"malformed checkpoint: {exc}")
    if policy.logs:
        try:
            open_checkpoint(signed_checkpoint, [lk.vkey for lk in policy.logs])
        except _note.NoteError as exc:
            return QuorumResult(False, f"not signed by a policy log: {exc}", cp)
    raw = parsed.text.encode("utf-8")
    cosigned: set[str] = set()
    for w in policy.witnesses.values():
        v = w.verifier
        for sig in parsed.signatures:
            if sig.name != v.name or sig.key_id != v.key_id:
                continue
            if not v.verify(raw, sig.signature):
                return QuorumResult(False, f"cosignature of witness {w.name} does not verify", cp,
                                    cosigned)
            cosigned.add(w.name)
    if policy.satisfied_by(cosigned):
        return QuorumResult(True, f"quorum {policy.quorum} met by {sorted(cosigned)}", cp,
                            cosigned)
    return QuorumResult(False, f"quorum {policy.quorum} not met (cosigned by {sorted(cosigned)})",
                        cp, cosigned)


def check_quorum(note: str | bytes, policy: Policy) -> bool:
    """True if the signed checkpoint satisfies the policy."""
    return evaluate_quorum(note, policy).ok
