"""RAUC bundles: build one from a boot and a root file system image, and check one
before it is installed.

A bundle is RAUC's `verity` format: a squashfs with the images and a manifest, the
dm-verity hash tree of that squashfs, and a CMS signature over the manifest (which
carries the tree's root hash). `rauc info --keyring` checks the signature only; the
payload itself is checked by the kernel's dm-verity while RAUC installs. A technician
wants to know before that, so `check` also recomputes the root hash of the payload
here (sha256, 4 KiB blocks, salted as dm-verity format 1) and compares it with the
signed one: a bundle with one flipped byte is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kiosk.update import UpdateError

COMPATIBLE = "kiosk-rpi-arm64"  # system.conf's [system] compatible on the image
BLOCK = 4096  # dm-verity data and hash block size RAUC uses
MAX_SIGNATURE = 1024 * 1024  # a CMS signature with its certificate chain is a few KiB


def rauc() -> str:
    path = shutil.which("rauc")
    if path is None:
        raise UpdateError("rauc not found: apt-get install rauc squashfs-tools")
    return path


@dataclass(frozen=True)
class BundleInfo:
    path: Path
    compatible: str
    version: str
    build: str
    signer: str
    images: tuple[str, ...]
    verity_hash: str
    verity_salt: str
    verity_size: int


def make_dev_key(folder: Path, name: str = "kiosk-dev") -> tuple[Path, Path]:
    """A self-signed development signing key and certificate (ECDSA P-256, 10 years)
    in `folder`, for tests and a developer's own builds. Never for a shop's kiosks: a
    shop makes its own offline (README, "Update keys")."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise UpdateError("openssl not found: apt-get install openssl")
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key.pem", folder / f"{name}.cert.pem"
    result = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "3650",
         "-subj", f"/O=kiosk development/CN={name}",
         "-addext", "keyUsage=critical,digitalSignature"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise UpdateError(f"openssl: {last_line(result.stderr)}")
    key.chmod(0o600)
    return key, cert


def manifest_text(version: str, build: str, images: dict[str, str]) -> str:
    """The bundle's manifest: the app version is the bundle's version (what `kiosk
    update status` and the controller show), images by slot class."""
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}", version):
        raise UpdateError(f"version {version!r}: letters, digits and . + ~ - only")
    lines = ["[update]", f"compatible={COMPATIBLE}", f"version={version}"]
    if build:
        lines.append(f"build={build}")
    lines += ["", "[bundle]", "format=verity"]
    for slot_class, filename in images.items():
        lines += ["", f"[image.{slot_class}]", f"filename={filename}"]
    return "\n".join(lines) + "\n"


def build(
    out: Path, version: str, cert: Path, key: Path | str, root_image: Path,
    boot_image: Path | None = None, build_id: str = "",
) -> Path:  # fmt: skip
    """A signed verity bundle at `out` (must end in .raucb) with the root file system
    image (slot class `rootfs`) and, if given, the boot partition image (`boot`). `key` is
    a key file or a PKCS#11 URL (an offline token: README, "Update keys")."""
    if out.suffix != ".raucb":
        raise UpdateError(f"{out}: a bundle's name must end in .raucb")
    for path in (cert, key, root_image, *([boot_image] if boot_image else [])):
        if not str(path).startswith("pkcs11:") and not Path(path).is_file():
            raise UpdateError(f"{path}: no such file")
    with tempfile.TemporaryDirectory(prefix="kiosk-bundle-") as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        images = {"rootfs": "rootfs.ext4"}
        _link_or_copy(root_image, content / "rootfs.ext4")
        if boot_image is not None:
            images["boot"] = "boot.vfat"
            _link_or_copy(boot_image, content / "boot.vfat")
        (content / "manifest.raucm").write_text(manifest_text(version, build_id, images))
        out.unlink(missing_ok=True)
        result = subprocess.run(
            [rauc(), "bundle", f"--cert={cert}", f"--key={key}", str(content), str(out)],
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
    if result.returncode != 0:
        raise UpdateError(f"rauc bundle: {last_line(result.stderr or result.stdout)}")
    return out


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def check(bundle: Path, keyring: Path) -> BundleInfo:
    """The bundle's signed manifest, if it is signed by a key in `keyring`, is made for
    this kind of kiosk, and its payload is the one that was signed; else UpdateError
    with one line saying which of these failed."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise UpdateError(f"{bundle}: no such bundle")
    if not Path(keyring).is_file():
        raise UpdateError(f"{keyring}: no keyring (the update certificates this kiosk trusts)")
    result = subprocess.run(
        [rauc(), "info", f"--keyring={keyring}", str(bundle)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        raise UpdateError(f"{bundle.name}: {_refusal(result.stderr + result.stdout)}")
    info = _parse_info(bundle, result.stdout, result.stderr)
    if info.compatible != COMPATIBLE:
        raise UpdateError(
            f"{bundle.name}: made for {info.compatible!r}, this kiosk is {COMPATIBLE!r}"
        )
    if verity_root_hash(bundle, info.verity_salt, info.verity_size) != info.verity_hash:
        raise UpdateError(
            f"{bundle.name}: the payload does not match its signature (damaged or tampered)"
        )
    return info


def _refusal(text: str) -> str:
    """RAUC's reason, in the technician's words."""
    low = text.lower()
    if "signature size is 0" in low or "no signature" in low or "invalid bundle format" in low:
        return "not a signed RAUC bundle"
    if "self-signed certificate" in low or "unable to get local issuer" in low:
        return "signed by a key this kiosk does not trust"
    if "verify error" in low or "signature verification failed" in low:
        return f"signature refused ({last_line(text)})"
    if "certificate has expired" in low:
        return "the signing certificate has expired"
    return last_line(text) or "refused by rauc"


def last_line(text: str) -> str:
    """A tool's last meaningful output line (RAUC's log chatter left out): its reason."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("rauc-Message:")] or lines
    return lines[-1] if lines else ""


def _field(text: str, name: str) -> str:
    match = re.search(rf"^\s*{re.escape(name)}:\s*'?([^'\n]*)'?\s*$", text, re.M)
    return match.group(1).strip() if match else ""


def _parse_info(bundle: Path, out: str, err: str) -> BundleInfo:
    if _field(out, "Bundle Format") != "verity":
        raise UpdateError(f"{bundle.name}: not a verity bundle (only format=verity is installed)")
    signer = re.search(r"Verified inline signature by '([^']*)'", err)
    images = tuple(re.findall(r"^\s*(?:\x1b\[[0-9;]*m)?\[(\w+)\]", out, re.M))
    try:
        size = int(_field(out, "Verity Size"))
    except ValueError:
        raise UpdateError(f"{bundle.name}: no verity size in its manifest") from None
    build = _field(out, "Build")
    return BundleInfo(
        path=bundle,
        compatible=_field(out, "Compatible"),
        version=_field(out, "Version"),
        build="" if build == "(null)" else build,
        signer=signer.group(1) if signer else "",
        images=images,
        verity_hash=_field(out, "Verity Hash"),
        verity_salt=_field(out, "Verity Salt"),
        verity_size=size,
    )


def verity_root_hash(bundle: Path, salt_hex: str, hash_tree_size: int) -> str:
    """The dm-verity root hash of the bundle's payload (everything before the hash
    tree, which is followed by the CMS signature and its 8-byte big-endian size)."""
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        raise UpdateError(f"{bundle.name}: the manifest's verity salt is not hex") from None
    total = bundle.stat().st_size
    with open(bundle, "rb") as handle:
        handle.seek(total - 8)
        (signature,) = struct.unpack(">Q", handle.read(8))
        end = total - 8 - min(signature, MAX_SIGNATURE) - hash_tree_size
        if signature > MAX_SIGNATURE or end <= 0 or end % BLOCK:
            raise UpdateError(f"{bundle.name}: the payload's size does not add up (damaged)")
        handle.seek(0)
        hashes = bytearray()
        remaining = end
        while remaining:
            block = handle.read(min(BLOCK, remaining))
            if not block:
                raise UpdateError(f"{bundle.name}: shorter than its manifest says (damaged)")
            remaining -= len(block)
            hashes += hashlib.sha256(salt + block).digest()
    level = _pad(bytes(hashes))
    while len(level) > BLOCK:
        level = _pad(
            b"".join(
                hashlib.sha256(salt + level[i : i + BLOCK]).digest()
                for i in range(0, len(level), BLOCK)
            )
        )
    return hashlib.sha256(salt + level).hexdigest()


def _pad(hashes: bytes) -> bytes:
    """Hashes packed into whole hash blocks, the last one padded with zeros."""
    rest = len(hashes) % BLOCK
    return hashes + b"\0" * (BLOCK - rest) if rest else hashes
