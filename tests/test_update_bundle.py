"""RAUC bundles: a bundle signed with the development key passes `rauc info` and our
check; an unsigned one, one signed by another key and one with a flipped payload byte
are refused with one line. Real rauc, openssl and mksquashfs (Debian packages)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kiosk.update import UpdateError, bundle


@pytest.fixture(scope="module")
def tools():
    for tool, package in (("rauc", "rauc"), ("mksquashfs", "squashfs-tools"),
                          ("openssl", "openssl")):  # fmt: skip
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package}")


@pytest.fixture(scope="module")
def keys(tmp_path_factory, tools):
    folder = tmp_path_factory.mktemp("keys")
    dev = bundle.make_dev_key(folder / "dev")
    other = bundle.make_dev_key(folder / "other", name="someone-else")
    return dev, other


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    root, boot = folder / "root.ext4", folder / "boot.vfat"
    root.write_bytes(bytes(range(256)) * 4096 * 3)  # 3 MiB of a pattern
    boot.write_bytes(b"\x5a" * 512 * 1024)
    return root, boot


@pytest.fixture(scope="module")
def signed(tmp_path_factory, keys, images):
    (key, cert), _ = keys
    out = tmp_path_factory.mktemp("bundles") / "kiosk-1.2.3.raucb"
    return bundle.build(out, "1.2.3", cert, key, images[0], images[1], build_id="test")


def test_dev_key_is_private(keys):
    (key, _), _ = keys
    assert key.stat().st_mode & 0o077 == 0


def test_signed_bundle_passes_rauc_and_our_check(signed, keys):
    (_, cert), _ = keys
    result = subprocess.run(["rauc", "info", f"--keyring={cert}", str(signed)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    info = bundle.check(signed, cert)
    assert (info.version, info.compatible, info.build) == ("1.2.3", bundle.COMPATIBLE, "test")
    assert set(info.images) == {"rootfs", "boot"}
    assert "kiosk-dev" in info.signer


def one_line(error: UpdateError) -> str:
    text = str(error)
    assert "\n" not in text and text
    return text


def test_bundle_signed_by_another_key_is_refused(tmp_path, keys, images):
    (_, cert), (other_key, other_cert) = keys
    foreign = bundle.build(tmp_path / "foreign.raucb", "1.2.3", other_cert, other_key, images[0])
    with pytest.raises(UpdateError) as caught:
        bundle.check(foreign, cert)
    assert "does not trust" in one_line(caught.value)


def test_unsigned_bundle_is_refused(tmp_path, keys, images):
    (_, cert), _ = keys
    content = tmp_path / "content"
    content.mkdir()
    shutil.copy(images[0], content / "rootfs.ext4")
    manifest = bundle.manifest_text("1.2.3", "", {"rootfs": "rootfs.ext4"})
    (content / "manifest.raucm").write_text(manifest)
    unsigned = tmp_path / "unsigned.raucb"
    subprocess.run(["mksquashfs", str(content), str(unsigned), "-quiet", "-noappend"],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    with pytest.raises(UpdateError) as caught:
        bundle.check(unsigned, cert)
    assert "not a signed RAUC bundle" in one_line(caught.value)


@pytest.mark.parametrize("where", [0, 0.5, "last-data-byte"])
def test_tampered_payload_is_refused(tmp_path, signed, keys, where):
    (_, cert), _ = keys
    tampered = tmp_path / "tampered.raucb"
    shutil.copy(signed, tampered)
    info = bundle.check(signed, cert)
    data = bytearray(tampered.read_bytes())
    signature = int.from_bytes(data[-8:], "big")
    payload_end = len(data) - 8 - signature - info.verity_size
    offset = {0: 0, 0.5: payload_end // 2, "last-data-byte": payload_end - 1}[where]
    data[offset] ^= 0x01
    tampered.write_bytes(bytes(data))
    # RAUC itself checks the signature only (the payload is checked by dm-verity while
    # it installs): `rauc info` passes, our check does not.
    assert subprocess.run(["rauc", "info", f"--keyring={cert}", str(tampered)],
                          capture_output=True, timeout=120).returncode == 0  # fmt: skip
    with pytest.raises(UpdateError) as caught:
        bundle.check(tampered, cert)
    assert "does not match its signature" in one_line(caught.value)


def test_tampered_signature_and_truncated_bundle_are_refused(tmp_path, signed, keys):
    (_, cert), _ = keys
    data = bytearray(signed.read_bytes())
    broken = tmp_path / "sig.raucb"
    broken.write_bytes(bytes(data[:-300]) + bytes(b ^ 0xFF for b in data[-300:-8]) + data[-8:])
    short = tmp_path / "short.raucb"
    short.write_bytes(bytes(data[: len(data) // 2]))
    for path in (broken, short):
        with pytest.raises(UpdateError) as caught:
            bundle.check(path, cert)
        one_line(caught.value)


def test_verity_root_hash_matches_veritysetup_layout(signed, keys):
    """Our root hash is the one RAUC signed (computed independently of rauc)."""
    (_, cert), _ = keys
    info = bundle.check(signed, cert)
    assert bundle.verity_root_hash(signed, info.verity_salt, info.verity_size) == info.verity_hash


def test_bad_names_and_versions(tmp_path, keys, images):
    (key, cert), _ = keys
    with pytest.raises(UpdateError, match="must end in .raucb"):
        bundle.build(tmp_path / "x.tar", "1", cert, key, images[0])
    with pytest.raises(UpdateError, match="version"):
        bundle.build(tmp_path / "x.raucb", "1 2", cert, key, images[0])
    with pytest.raises(UpdateError, match="no such bundle"):
        bundle.check(tmp_path / "missing.raucb", cert)
