"""Who approved: Ed25519 keys, the signed approval message and confusable-safe names (pure).

A reviewer is a key, not a string: the flow accepts a signed approval only if the
signature verifies against the key registered for that name in
deployments/reviewers.yaml. Names are still compared after NFKC and a Unicode
TR39 confusable skeleton, so ``alice`` and ``alice`` spelt with a Cyrillic a (U+0430)
are one name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import unicodedata
from functools import cache
from pathlib import Path

from pydantic import BaseModel, SecretStr

from mirror_rollout.errors import ConfigError
from mirror_rollout.plan_digest import PlanDigest

#: The sandbox's auto-approval signs as this reviewer; refused off the sandbox backend.
AUTO_REVIEWER = "sandbox-auto"

#: Domain separation: a signature made for anything else never verifies as an approval.
MESSAGE_PURPOSE = "mirror-rollout approval v1"
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


# --------------------------------------------------------------------------- names


@cache
def _prototypes() -> dict[str, str]:
    """Each confusable character -> one representative of its class (TR39 confusables.txt).

    The data is the copy of Unicode's confusables.txt shipped by the maintained
    ``confusable-homoglyphs`` package (pairs in both directions). Characters linked
    by a pair form one class; its representative is an ASCII lowercase letter when
    the class has one (the Latin prototype), else its lowest code point. Only
    single-character pairs are used: the skeletons of two names are equal when
    each position looks alike.
    """
    from importlib.resources import files

    data = json.loads(files("confusable_homoglyphs").joinpath("confusables.json").read_text())
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.get(c, c) != c:
            parent[c] = parent.get(parent[c], parent[c])
            c = parent[c]
        return c

    def union(a: str, b: str) -> None:
        a, b = find(a), find(b)
        if a != b:
            parent[max(a, b)] = min(a, b)

    bidi_marks = "\u200e\u200f"
    for source, entries in data.items():
        source = source.strip(bidi_marks)
        if len(source) != 1:
            continue
        for entry in entries:
            target = entry["c"].strip(bidi_marks)
            if len(target) == 1:
                union(source, target)
    classes: dict[str, list[str]] = {}
    for c in list(parent):
        classes.setdefault(find(c), []).append(c)
    for root in list(classes):
        classes[root].append(root)

    def rank(c: str) -> tuple[int, int]:
        latin = c.isascii() and c.isalpha() and c.islower()
        return (0 if latin else 1 if c.isascii() else 2, ord(c))

    return {c: min(members, key=rank) for members in classes.values() for c in members}


def skeletons(name: str) -> frozenset[str]:
    """A name's identities for comparison: NFKC, confusables mapped (TR39-style), with and
    without case folding ("I" looks like "l" before folding; "ALICE" is "alice" after).

    Two names are one when their skeletons meet: see :func:`same_name`.
    """
    prototypes = _prototypes()

    def fold(text: str) -> str:
        text = unicodedata.normalize("NFD", text)
        mapped = "".join(prototypes.get(c, c) for c in text)
        # Combining marks and format characters (zero-width joiners…) are dropped too.
        return "".join(
            c
            for c in unicodedata.normalize("NFD", mapped)
            if unicodedata.category(c) not in ("Mn", "Cf")
        )

    text = unicodedata.normalize("NFKC", name).strip()
    return frozenset({fold(text), fold(text.casefold()), fold(fold(text).casefold())})


def same_name(a: str, b: str) -> bool:
    """``alice``, ``ALICE``, ``a1ice``, alice with a Cyrillic a (U+0430) or in fullwidth letters
    (U+FF41…) are one name."""
    return not skeletons(a).isdisjoint(skeletons(b))


def display_name(name: str) -> str:
    """The name as recorded: NFKC, surrounding whitespace removed."""
    return unicodedata.normalize("NFKC", name).strip()


# --------------------------------------------------------------------------- keys


def decode_public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(
            f"not an Ed25519 public key (base64 of {PUBLIC_KEY_BYTES} bytes, as `mirror-rollout reviewer new` prints)"
        )
    return raw


def encode_public_key(public_key: bytes) -> str:
    return base64.b64encode(public_key).decode()


def fingerprint(public_key: bytes) -> str:
    """A short, stable name of a public key for records: ``ed25519:`` + 24 hex of its sha256."""
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:24]


def approval_message(
    flow_run_id: str, stage: str, plan_sha256: PlanDigest, approve: bool, allow_destroy: bool
) -> bytes:
    """The canonical bytes a reviewer signs: this run, this stage, this plan, this decision."""
    return json.dumps(
        {
            "purpose": MESSAGE_PURPOSE,
            "flow_run_id": str(flow_run_id).lower(),
            "stage": stage,
            "plan_sha256": str(plan_sha256),
            "approve": bool(approve),
            "allow_destroy": bool(allow_destroy),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def decode_signature(text: str) -> bytes | None:
    """The 64 signature bytes, or None when ``text`` is not base64 of 64 bytes."""
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None


def verifies(public_key: bytes, message: bytes, signature: bytes) -> bool:
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        VerifyKey(public_key).verify(message, signature)
    except BadSignatureError:
        return False
    return True


class PrivateKeyFile(BaseModel):
    """A reviewer's private key file (JSON, mode 0600): the name it signs as and the seed."""

    reviewer: str
    private_key: SecretStr  # base64 of the 32-byte Ed25519 seed; never printed

    def signing_key(self):
        from nacl.signing import SigningKey

        return SigningKey(base64.b64decode(self.private_key.get_secret_value()))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key().verify_key)

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.signing_key().sign(message).signature).decode()


def new_key(reviewer: str) -> PrivateKeyFile:
    from nacl.signing import SigningKey

    seed = bytes(SigningKey.generate())
    return PrivateKeyFile(reviewer=reviewer, private_key=SecretStr(base64.b64encode(seed).decode()))


def write_key(path: Path, key: PrivateKeyFile) -> None:
    """Create ``path`` with mode 0600 (its directory 0700); never overwrite a key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = json.dumps({"reviewer": key.reviewer, "private_key": key.private_key.get_secret_value()})
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists", "choose another --out, or delete the old key first"
        ) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(body + "\n")


def read_key(path: Path) -> PrivateKeyFile:
    """A private key file, refused (with the fix) when others may read it or it is malformed."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the key file {path} ({exc.strerror})",
            "give the path `mirror-rollout reviewer new` wrote",
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the key file {path} is readable by others (mode {stat.S_IMODE(mode):o})",
            f"chmod 600 {path}",
        )
    try:
        key = PrivateKeyFile.model_validate_json(text)
        key.signing_key()
    except Exception:  # the content may be a secret: never echo it
        raise ConfigError(
            f"{path} is not a mirror-rollout reviewer key",
            "give the path `mirror-rollout reviewer new` wrote",
        ) from None
    return key
