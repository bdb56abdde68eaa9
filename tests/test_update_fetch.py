"""Updates from the shop controller: `kiosk controller offer-update` checks a signed bundle
and offers it; the web view serves the offer and the bundle (Range); `kiosk update fetch`
downloads it (resuming), checks size and sha256, and installs it; hostile offers and
damaged downloads are refused in one line. Real rauc for the signature, a real uvicorn."""

from __future__ import annotations

import json
import random
import shutil
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from kiosk.cli import cli
from kiosk.config import parse
from kiosk.mqtt import store
from kiosk.update import UpdateError, bundle, fetch, offer
from kiosk.update.manager import Record
from tests.mqtt_env import free_port, wait_until


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    for tool, package in (("rauc", "rauc"), ("mksquashfs", "squashfs-tools")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {package} (./dev.sh test does)")
    folder = tmp_path_factory.mktemp("bundle")
    key, cert = bundle.make_dev_key(folder / "dev")
    root = folder / "root.ext4"
    root.write_bytes(random.Random(7).randbytes(5 * 1024 * 1024))  # 5 MiB that stays 5 MiB
    out = folder / "kiosk-9.9.1.raucb"
    bundle.build(out, "9.9.1", cert, key, root, None, build_id="test")
    return out, cert


@pytest.fixture
def controller(tmp_path, signed):
    """The controller's config, its store, and its web view serving on loopback."""
    import uvicorn  # noqa: PLC0415

    from kiosk.mqtt.web.app import build_app  # noqa: PLC0415

    _, cert = signed
    port = free_port()
    config = parse(
        f'[controller]\ndatabase = "{tmp_path / "controller.db"}"\nweb_port = {port}\n'
        f'web_host = "127.0.0.1"\n[update]\nkeyring = "{cert}"\n'
    )
    db = store.open_store(config.controller.database)
    server = uvicorn.Server(
        uvicorn.Config(build_app(config), host="127.0.0.1", port=port, log_level="warning",
                       lifespan="off", http="h11", ws="none")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 15, what="the web view")
    yield config, f"http://127.0.0.1:{port}/updates/", tmp_path
    server.should_exit = True
    thread.join(10)
    db.close()


def run_cli(config_path: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config_path), *args], catch_exceptions=False)


def offer_it(controller, signed, *extra: str):
    config, _, folder = controller
    path = folder / "controller.toml"
    path.write_text(
        f'[controller]\ndatabase = "{config.controller.database}"\n'
        f'[update]\nkeyring = "{config.update.keyring}"\n'
    )
    return run_cli(path, "controller", "offer-update", str(signed[0]), *extra)


def test_the_controller_offers_a_signed_bundle_and_serves_it_with_ranges(controller, signed):
    config, url, _ = controller
    with pytest.raises(urllib.error.HTTPError) as nothing:
        urllib.request.urlopen(url + "current.json", timeout=10)
    assert nothing.value.code == 404
    result = offer_it(controller, signed, "--devices", "till-01,cart-01")
    assert result.exit_code == 0 and "offering 9.9.1" in result.output, result.output
    wanted = fetch.read_offer(url)
    assert (wanted.version, wanted.file, wanted.devices) == ("9.9.1", "kiosk-9.9.1.raucb",
                                                             ("till-01", "cart-01"))  # fmt: skip
    assert wanted.sha256 == offer.sha256_of(signed[0]) and wanted.size == signed[0].stat().st_size
    request = urllib.request.Request(url + wanted.file, headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206 and response.read() == signed[0].read_bytes()[100:200]
    for name in ("controller.db", "../controller.db", "kiosk-0.0.1.raucb", "current.json.tmp"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + name, timeout=10)
        assert refused.value.code == 404  # only the offered bundle, by its name
    withdrawn = run_cli(controller[2] / "controller.toml", "controller", "withdraw-update")
    assert "withdrew 9.9.1" in withdrawn.output
    assert fetch.read_offer(url) is None
    assert not (config.controller.updates_folder() / wanted.file).exists()


def test_an_unsigned_or_foreign_bundle_is_not_offered(controller, signed, tmp_path):
    fake = tmp_path / "kiosk-6.6.6.raucb"
    fake.write_bytes(b"not a bundle" * 1000)
    result = offer_it(controller, (fake, signed[1]))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert offer.current(controller[0].controller.updates_folder()) is None


def test_a_kiosk_fetches_resumes_checks_and_installs_the_offer(
    controller, signed, tmp_path, monkeypatch
):
    _, url, _ = controller
    asked: list[tuple[str, int, int]] = []  # (file, from byte, HTTP status)
    real_get = fetch._get

    def spying_get(address, start=0):
        response = real_get(address, start)
        asked.append((address.rsplit("/", 1)[1], start, response.status))
        return response

    monkeypatch.setattr(fetch, "_get", spying_get)
    assert offer_it(controller, signed).exit_code == 0
    wanted = fetch.read_offer(url)
    downloads = tmp_path / "kiosk-data" / "updates"
    downloads.mkdir(parents=True)
    # an earlier download was cut after 1 MiB: it is resumed with a Range request
    (downloads / f"{wanted.file}.part").write_bytes(signed[0].read_bytes()[: 1024 * 1024])
    installed: list[tuple[str, str]] = []
    record = Record(tmp_path / "update.json")

    def install(path: Path):
        installed.append((path.name, offer.sha256_of(path)))  # what RAUC would get
        return bundle.check(path, signed[1])  # the signature, as Manager.install checks it

    said = fetch.fetch(url, "till-01", "9.9.0", downloads, record, install)
    assert said.startswith("installed 9.9.1"), said
    assert installed == [(wanted.file, wanted.sha256)]
    assert (wanted.file, 1024 * 1024, 206) in asked  # resumed, not downloaded again
    assert list(downloads.iterdir()) == []  # the room goes back to the ledger
    # the next look does nothing: installed already, or not newer once it runs
    assert "installed already" in fetch.fetch(url, "till-01", "9.9.0", downloads, record, install)
    assert "not newer" in fetch.fetch(url, "till-01", "9.9.1", downloads, record, install)
    assert len(installed) == 1


def test_an_offer_for_other_kiosks_or_later_is_left_alone(controller, signed, tmp_path):
    _, url, _ = controller
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert offer_it(controller, signed, "--devices", "cart-01").exit_code == 0
    never = lambda path: pytest.fail("installed")  # noqa: E731
    record = Record(tmp_path / "update.json")
    said = fetch.fetch(url, "till-01", "1.0", tmp_path, record, never)
    assert said == "9.9.1 is offered, not (yet) to till-01"
    assert offer_it(controller, signed, "--not-before", later).exit_code == 0
    assert "not (yet)" in fetch.fetch(url, "till-01", "1.0", tmp_path, record, never)
    assert fetch.fetch(None, "till-01", "1.0", tmp_path, record, never).startswith("no update")


def test_a_download_that_does_not_match_the_offer_is_thrown_away(controller, signed, tmp_path):
    config, url, _ = controller
    assert offer_it(controller, signed).exit_code == 0
    folder = config.controller.updates_folder()
    wanted = offer.current(folder)
    served = folder / wanted.file
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the file changed on the controller after it was offered
    served.write_bytes(bytes(data))
    downloads = tmp_path / "downloads"
    with pytest.raises(UpdateError, match="does not match the offer's sha256") as refused:
        fetch.fetch(url, "till-01", "1.0", downloads, Record(tmp_path / "u.json"), print)
    assert "\n" not in str(refused.value)
    assert list(downloads.iterdir()) == []


def good_offer() -> dict:
    return {"v": 1, "version": "1.2.5", "file": "kiosk-1.2.5.raucb", "size": 1000,
            "sha256": "a" * 64, "devices": "all", "not_before": None}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"file": "../../etc/shadow"}, {"file": "kiosk-1.2.5.raucb/../../x"},
        {"file": "/var/lib/kiosk/ledger.db"}, {"version": "1.2.5; rm -rf /"},
        {"version": "x" * 65}, {"size": 0}, {"size": 5 * 1024**3}, {"size": 1.5},
        {"size": True}, {"sha256": "A" * 64}, {"sha256": "a" * 63}, {"devices": "some"},
        {"devices": ["till 01"]}, {"devices": ["x"] * 1001}, {"not_before": "tomorrow"},
        {"not_before": "2026-12-01T10:00:00"}, {"v": 2}, {"extra": 1},
    ],
)  # fmt: skip
def test_hostile_offers_are_refused_in_one_line(change):
    offer.parse(json.dumps(good_offer()).encode())  # the unchanged offer is fine
    with pytest.raises(UpdateError) as refused:
        offer.parse(json.dumps(good_offer() | change).encode())
    assert "\n" not in str(refused.value)


def test_garbage_offers_are_refused():
    for raw in (b"\xff", b"[" * 5000, b"null", b"{" + b" " * 70_000 + b"}"):
        with pytest.raises(UpdateError):
            offer.parse(raw)


def test_a_source_that_is_not_http_is_refused(tmp_path):
    with pytest.raises(UpdateError, match="not an http"):
        fetch.read_offer("file:///etc/passwd")
    with pytest.raises(UpdateError, match="does not answer"):
        fetch.read_offer(f"http://127.0.0.1:{free_port()}/updates/")
