"""The central-station page in a real browser: Debian's headless Chromium driven by Selenium
(``/usr/bin/chromedriver`` given explicitly: Selenium Manager never downloads anything), against a
gateway fed by ``ecgsim`` devices over TCP.

Beds: 1 and 2 play a real Chapman record where ``../shared/data`` has it (else a synthetic one),
bed 3 drops its link every 8 s of signal for 3 s (the no-telemetry alarm), bed 4 plays 14 s of
synthetic sinus rhythm then only noise (asystole). Checked: the tiles appear, a rhythm change and an
alarm reach the page within 2 s of the gateway committing them, acknowledging works, a bed's history
and the strip around an event open. A screenshot is saved beside the test's files (and to
``docs/ward.png`` with ``ECGEDGE_WARD_SCREENSHOT=docs/ward.png``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="the ward needs the 'ward' extra: pip install 'ecgedge[ward]'")
selenium = pytest.importorskip("selenium", reason="the page test drives Chromium with selenium (the 'ward' extra)")

from helpers import linear_export  # noqa: E402
from ward_helpers import REPO, GatewayThread, ecgsim_record, signal_adu  # noqa: E402

from ecgedge.config import STANDARD_12_LEADS  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SPEED = 2.0  # ecgsim's pace: twice real time, so a rhythm and an asystole come within seconds
WITHIN_S = 2.0  # the bound: a record on the page within 2 s of the gateway's event

pytestmark = [pytest.mark.slow, pytest.mark.c]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: apt-get install chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1500,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    yield driver
    driver.quit()


def _asystole_raw(path: Path) -> list[str]:
    """14 s of synthetic sinus rhythm, then 16 s of 20-µV noise (no beat), as ecgsim --raw integers."""
    sr = signal_adu("SR", 14.0, seed=4)
    noise = np.round(np.random.default_rng(4).normal(0, 20, (12, 8000))).astype(np.int64)
    path.write_bytes(np.concatenate([sr, noise], axis=1).T.astype("<i2").tobytes())
    return ["--raw", str(path), "--fs", "500", "--leads", "12", "--gain-uv", "1", "--lead-names", ",".join(STANDARD_12_LEADS)]


def _wait(driver, script: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"the page never showed {what} within {timeout} s")


def test_central_station_page_in_chromium(browser, build, tmp_path, request):
    shared = request.getfixturevalue("shared_data") if (REPO.parent / "shared" / "data").is_dir() else None
    record, what = ecgsim_record(tmp_path, shared)
    export = linear_export(tmp_path / "linear")
    sims = []
    with GatewayThread(export, tmp_path / "ward.sqlite") as gw:
        def device(stream_id: int, *args: str) -> None:
            sims.append(subprocess.Popen([str(build / "ecgsim"), "--quiet", "--speed", str(SPEED), "--loop", "--seconds", "120",
                                          "--stream-id", str(stream_id), "--tcp-connect", f"127.0.0.1:{gw.port}", *args],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            device(1, *record)
            device(2, "--seed", "2", *record)
            device(3, "--disconnect-after", "8:3", *record)
            device(4, *_asystole_raw(tmp_path / "asystole.i16"))
            browser.get(gw.base + "/?token=test-token-123")
            _wait(browser, "return document.querySelectorAll('.tile').length >= 4 && document.querySelectorAll('.tile canvas').length >= 4",
                  20, "a tile for each of the 4 beds")

            # a rhythm change and an alarm, each on the page within 2 s of the gateway committing it
            change = gw.wait_for(lambda r: r["type"] == "rhythm_change", 40, "rhythm change")[0]
            rate_alarms = any(r["type"] == "heart_rate" for r in gw.records)  # the stream raises rate alarms
            wanted = "asystole" if rate_alarms else "no_telemetry"
            alarm_row = None
            deadline = time.monotonic() + 40
            while alarm_row is None and time.monotonic() < deadline:
                alarm_row = next((a for a in gw.gateway.alarms.values() if a["alarm"] == wanted and a["cleared"] is None), None)
                time.sleep(0.1)
            assert alarm_row is not None, f"no {wanted} alarm within 40 s"
            time.sleep(WITHIN_S)
            log = browser.execute_script("return window.wardLog")
            seen = next(e for e in log if e["type"] == "rhythm_change" and e["stream"] == change["stream"])
            assert seen["received"] - seen["ts"] < WITHIN_S
            seen_alarm = next(e for e in log if e["type"] == "alarm" and e["id"] == alarm_row["id"])
            assert seen_alarm["received"] - alarm_row["raised"] < WITHIN_S
            bed = alarm_row["bed"]
            colour = "alarm-high" if wanted == "asystole" else "alarm-medium"
            assert _wait(browser, f"return document.querySelector('.tile[data-bed=\"{bed}\"]').classList.contains('{colour}')", 5,
                         f"bed {bed}'s tile coloured by its alarm's priority")
            assert browser.execute_script(f"return document.querySelector('.tile[data-bed=\"{bed}\"] .hr').textContent") != ""

            # acknowledge from the alarm list
            browser.execute_script(f"document.querySelector('#alarms tr[data-alarm-id=\"{alarm_row['id']}\"] button.ack').click()")
            _wait(browser, f"return document.querySelector('#alarms tr[data-alarm-id=\"{alarm_row['id']}\"].acked') !== null", 5,
                  "the alarm acknowledged")
            assert gw.gateway.alarms[alarm_row["id"]]["acked"] is not None

            # a bed's history: timeline, events, the strip around one
            time.sleep(1.0)
            browser.execute_script("document.querySelector('.tile[data-bed=\"1\"]').click()")
            _wait(browser, "return document.querySelectorAll('#h-events li').length > 0", 10, "bed 1's history")
            browser.execute_script("document.querySelector('#h-events li[data-type=\"quality\"], #h-events li').click()")
            _wait(browser, "return document.getElementById('h-strip-caption').textContent.includes('around it')", 10,
                  "the strip around an event")
            browser.save_screenshot(str(tmp_path / "ward-history.png"))
            browser.execute_script("document.getElementById('close-history').click()")
            time.sleep(0.5)
            shot = tmp_path / "ward.png"
            browser.save_screenshot(str(shot))
            assert shot.stat().st_size > 10_000
            if os.environ.get("ECGEDGE_WARD_SCREENSHOT"):
                shutil.copyfile(shot, os.environ["ECGEDGE_WARD_SCREENSHOT"])
            print(f"\nward page: 4 beds ({what}); screenshot {shot}")
        finally:
            for p in sims:
                p.kill()
                p.wait()
