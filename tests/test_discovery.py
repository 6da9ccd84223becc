"""Finding engines on the network: a `wren serve --advertise` process on 127.0.0.1 is heard by a browser in this
process (mDNS on the loopback interface), and listed on the Settings dialog's Engine page. Handshakes only."""
import asyncio
import subprocess
import sys
import time

import pytest
from conftest import model_or_skip, run, start_server, stop_server

qasync = pytest.importorskip("qasync")
pytest.importorskip("zeroconf")

from wren.engine.serve.mdns import Advertiser, EngineBrowser, check_host  # noqa: E402
from wren.engine.settings import Settings  # noqa: E402

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def advertised():
    """A `wren serve --advertise` on 127.0.0.1 with a key: its URL."""
    proc, url = start_server("-m", str(model_or_skip("SmolLM2-135M-Instruct")), "--api-key", "k", "--advertise")
    yield url
    stop_server(proc)


async def until(predicate, what: str, timeout: float = 60):
    """Waits for predicate() (a handshake, with a generous bound so that a lost packet fails instead of hanging)."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"{what} did not happen"
        await asyncio.sleep(0.05)


def test_a_browser_hears_wren_serve_advertise(loop, advertised):
    seen = []

    async def scenario():
        browser = EngineBrowser(seen.append, interfaces=["127.0.0.1"])
        await browser.start()
        try:
            await until(lambda: any(f.url == advertised for batch in seen for f in batch), "the announcement")
        finally:
            await browser.stop()
    run(loop, scenario())
    found = next(f for batch in seen for f in batch if f.url == advertised)
    assert found.model == "SmolLM2-135M-Instruct" and found.key_required
    assert "wren on" in found.name


def test_an_announcement_ends_with_its_server(loop):
    seen = []
    name = "wren test ending._wren._tcp.local."

    async def scenario():
        browser = EngineBrowser(lambda found: None, interfaces=["127.0.0.1"])
        await browser.start()
        adv = Advertiser("127.0.0.1", 18081, "Test model", key_required=False, name="wren test ending")
        await adv.start()
        try:
            await until(lambda: name in browser.found, "the announcement")
            seen.append(browser.found[name])
            await adv.update_model("Another model")  # the server switched its model
            await until(lambda: browser.found[name].model == "Another model", "the new model's announcement")
            await adv.stop()
            await until(lambda: name not in browser.found, "the goodbye")
        finally:
            await adv.stop()
            await browser.stop()
    run(loop, scenario())
    assert seen[0].url == "http://127.0.0.1:18081" and seen[0].model == "Test model" and not seen[0].key_required


def test_advertise_needs_an_ipv4_address():
    check_host("0.0.0.0")
    check_host("127.0.0.1")
    for bad in ("::1", "localhost"):
        with pytest.raises(ValueError, match="IPv4"):
            check_host(bad)
    r = subprocess.run([sys.executable, "-m", "wren.engine.cli", "serve", "--host", "::1", "--advertise"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "IPv4" in r.stderr and "Traceback" not in r.stderr


def test_the_engine_page_lists_engines_on_the_network(qtbot, loop, advertised):
    from wren.gui.settings.dialog import SettingsDialog

    async def scenario():
        dialog = SettingsDialog(Settings())
        qtbot.addWidget(dialog)
        await until(lambda: any(advertised in dialog.found_list.item(i).text()
                                for i in range(dialog.found_list.count())), "the listing")
        row = next(i for i in range(dialog.found_list.count()) if advertised in dialog.found_list.item(i).text())
        dialog._use_found(dialog.found_list.item(row))
        dialog.key_edit.setText("k")
        s = dialog.settings()
        dialog.reject()
        await dialog.stopping_browsing()  # its sockets are closed before the loop goes
        return s
    s = run(loop, scenario())
    assert s.engine_url == advertised and s.engine_key == "k"
