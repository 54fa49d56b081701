# The receiver's web page in a real browser: Debian's chromium, headless, driven by
# selenium through Debian's chromedriver (nothing is downloaded: selenium's driver manager
# is never asked). Skipped, saying why, where either is missing; .ci/run installs them.
#
# EARSHOT_SCREENSHOT=docs/web-page.png makes the live-session test save the README's
# screenshot there; without it the picture goes only to the test's temporary folder.
import datetime
import json
import os
import shutil
import threading
import time

import pytest

from host_tools import recordings
from tests.simboard import make_wav, sim
from tests.webtools import PASSWORD, Board, receiver, set_password, wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def chrome(tmp_path_factory):
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            pytest.skip(f"{program} is not installed (apt-get install chromium chromium-driver); .ci/run installs it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    def refuse(*args, **kwargs):
        raise AssertionError("selenium's driver manager was asked for a driver: nothing may be downloaded")

    saved = selenium_manager.SeleniumManager.binary_paths
    selenium_manager.SeleniumManager.binary_paths = refuse
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # script errors, CSP violations
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        selenium_manager.SeleniumManager.binary_paths = saved


@pytest.fixture
def browser(chrome):
    chrome.delete_all_cookies()
    return chrome


def _state(driver, board):
    # Read in one script: the live updates replace the cards, so a found element can go stale.
    return driver.execute_script(
        "const c = document.querySelector(`article.board[data-board='${arguments[0]}']`);"
        "return c && c.dataset.state;", board)


def _card_text(driver, board):
    return driver.execute_script(
        "const c = document.querySelector(`article.board[data-board='${arguments[0]}']`);"
        "return c && c.innerText;", board)


def _texts(driver, selector):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent);", selector)


def _load_ms(driver):
    return driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;")


def test_the_page_loads_and_shows_the_boards(browser, tmp_path):
    with receiver(tmp_path) as rx:
        board = Board(rx.port, rx.state, "kitchen", reported="muted")
        board.sync()
        browser.get(f"http://127.0.0.1:{rx.web_port}/")
        assert _state(browser, "kitchen") == "muted"
        assert "muted: the microphone is off" in _card_text(browser, "kitchen")
        assert "not seen since the receiver started" in _card_text(browser, "hall")
        # The script ran (the CSP allows it) and the live stream is up.
        wait_for(lambda: browser.find_element("id", "live").text == "live", what="the live indicator")
        print(f"page load: {_load_ms(browser):.0f} ms")
        board.close()
        wait_for(lambda: _state(browser, "kitchen") == "offline", what="offline")
        # No script error and no CSP violation on the way.
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []


DAY = (  # hours ago, board, trigger, what became of it, seconds
    (9.4, "kitchen", "button", "saved", 6.1), (8.1, "hall", "wake", "rejected", 1.3),
    (7.2, "kitchen", "wake", "saved", 4.3), (5.9, "living-room", "wake", "saved", 3.5),
    (4.1, "kitchen", "wake", "rejected", 1.3), (3.3, "hall", "button", "saved", 8.2),
    (2.6, "kitchen", "button", "saved", 9.8), (1.8, "living-room", "wake", "discarded", 2.2),
    (1.3, "kitchen", "wake", "rejected", 1.3), (0.6, "kitchen", "wake", "saved", 3.2))


def _history(rx, now):
    # A plausible day for the screenshot: sessions earlier today (clipped to today).
    midnight = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    day = [(now - datetime.timedelta(hours=ago), *rest) for ago, *rest in DAY]
    day = [d for d in day if d[0].astimezone() >= midnight]
    for n, (start, device, trigger, event, seconds) in enumerate(day, 100):
        stamp = start.isoformat(timespec="milliseconds")
        if event == "rejected":
            rx.call(rx.receiver.note, {"event": "rejected", "device": device, "session": n, "start": stamp,
                                       "trigger": trigger, "sent_s": seconds, "verify_score": 0.08,
                                       "verify_cutoff": 0.5})
            continue
        if event == "discarded":
            rx.call(rx.receiver.note, {"event": "discarded", "device": device, "session": n, "start": stamp,
                                       "trigger": trigger, "sent_s": seconds, "reason": "closed by peer"})
            continue
        stem = f"{device}-{start:%Y%m%d-%H%M%S}-{n}"
        _write_wav(rx.recordings / f"{stem}.wav", seconds)
        meta = {"device": device, "session": n, "trigger": trigger, "start": stamp, "device_timestamp_ms": 0,
                "duration_s": seconds, "samples": int(seconds * 16000), "rate": 16000, "width": 2, "channels": 1,
                "dropped_frames": 0, "wav": f"{stem}.wav"}
        if trigger == "wake":
            meta["wake_verified_score"] = 0.93
        (rx.recordings / f"{stem}.json").write_text(json.dumps(meta))
        rx.call(rx.receiver.note, {"event": "saved", **meta})


def _write_wav(path, seconds):
    from host_tools.audio import write_wav

    import numpy as np

    write_wav(path, (np.sin(np.arange(int(seconds * 16000)) / 9) * 3000).astype(np.int16))


def test_a_simulated_boards_session_appears_live(browser, tmp_path, capsys):
    # The unmodified firmware on the virtual board, in real time, streams to this receiver
    # while the page is open: its card turns blue, the timeline grows a bar and the
    # recording appears, with no reload.
    wav = make_wav(tmp_path / "speech.wav", 6.0, bursts=[(1.2, 3.2)])
    with receiver(tmp_path, boards=("kitchen", "hall", "living-room")) as rx:
        _history(rx, datetime.datetime.now(datetime.timezone.utc))
        hall = Board(rx.port, rx.state, "hall", reported="muted")
        hall.sync()
        opened = []
        rx.call(rx.receiver.watch, lambda: opened.append(time.time()) if not opened and any(
            b.session for b in rx.receiver.boards.values()) else None)
        browser.get(f"http://127.0.0.1:{rx.web_port}/")
        wait_for(lambda: browser.find_element("id", "live").text == "live", what="the live indicator")
        browser.execute_script("""
            window.stayed = true;  // gone if the page reloads
            const card = () => document.querySelector('article.board[data-board="living-room"]');
            new MutationObserver(() => {
                if (!window.streamingAt && card() && card().dataset.state === 'streaming') {
                    window.streamingAt = performance.timeOrigin + performance.now();
                }
            }).observe(document.body, {subtree: true, childList: true, attributes: true});""")
        result = {}
        board = threading.Thread(target=lambda: result.update(run=sim(
            tmp_path / "sim", capsys, "--receiver", f"127.0.0.1:{rx.port}", "--pairing", rx.state / "pairings" /
            "living-room", "--set", "device=living-room", "--press", 1.0, "--realtime", wav=wav)))
        board.start()
        try:
            wait_for(lambda: _state(browser, "living-room") == "streaming", timeout=15, what="the board streaming")
            bars = browser.find_elements("css selector", '[data-board="living-room"] rect.bar.open')
            assert len(bars) == 1
            _screenshot(browser, tmp_path)
            latency_ms = browser.execute_script("return window.streamingAt") - opened[0] * 1000
            newest = browser.execute_script("return document.querySelector('li.rec').dataset.id")
            wait_for(lambda: browser.execute_script("return document.querySelector('li.rec').dataset.id") != newest
                     and "living-room" in _texts(browser, "li.rec")[0], timeout=15, what="the recording")
        finally:
            board.join(30)
        assert result["run"].code == 0, result["run"].err
        assert browser.execute_script("return window.stayed") is True  # no reload
        wait_for(lambda: _state(browser, "living-room") in ("idle", "offline"), what="the session's end")
        stored = recordings.sessions(rx.recordings)[-1]
        assert stored["device"] == "living-room"
        row = browser.find_element("css selector", f'li.rec[data-id="{stored["wav"][:-4]}"]')
        assert "button" in row.text and f"{stored['duration_s']:.2f} s" in row.text
        print(f"session start to the card turning blue in the browser: {latency_ms:.0f} ms")
        hall.close()


def _screenshot(driver, tmp_path):
    path = tmp_path / "web-page.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height + 20, 800), 2400))
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    wanted = os.environ.get("EARSHOT_SCREENSHOT")
    if wanted:
        shutil.copyfile(path, wanted)


def test_the_audio_element_plays_the_stored_wav(browser, tmp_path):
    with receiver(tmp_path) as rx:
        board = Board(rx.port, rx.state, "kitchen")
        board.session(2.0)
        [meta] = recordings.sessions(rx.recordings)
        browser.get(f"http://127.0.0.1:{rx.web_port}/")
        audio = browser.find_element("css selector", f'li.rec[data-id="{meta["wav"][:-4]}"] audio')
        state = browser.execute_async_script("""
            const [audio, done] = arguments;
            audio.addEventListener('error', () => done({error: audio.error && audio.error.code}));
            audio.addEventListener('timeupdate', function once() {
                if (audio.currentTime < 0.3) return;
                audio.removeEventListener('timeupdate', once);
                audio.pause();
                audio.currentTime = 1.5;  // a seek: the server answers the range request
                audio.addEventListener('seeked', () => done({duration: audio.duration, at: audio.currentTime,
                                                             seekable: audio.seekable.end(0)}), {once: true});
            });
            audio.play().catch(e => done({error: String(e)}));""", audio)
        assert "error" not in state, state
        assert state["duration"] == pytest.approx(2.0, abs=0.01)
        assert state["at"] == pytest.approx(1.5, abs=0.05) and state["seekable"] == pytest.approx(2.0, abs=0.01)
        board.close()


def test_delete_removes_the_file(browser, tmp_path):
    with receiver(tmp_path) as rx:
        board = Board(rx.port, rx.state, "kitchen")
        board.session(1.0, seed=1)
        board.session(1.0, seed=2)
        first, second = recordings.sessions(rx.recordings)
        browser.get(f"http://127.0.0.1:{rx.web_port}/")
        button = browser.find_element("css selector", f'li.rec[data-id="{first["wav"][:-4]}"] button.delete')
        button.click()
        alert = browser.switch_to.alert
        assert "overwritten with zeros" in alert.text
        alert.dismiss()  # asked, and said no: nothing happens
        assert (rx.recordings / first["wav"]).exists()
        browser.find_element("css selector", f'li.rec[data-id="{first["wav"][:-4]}"] button.delete').click()
        browser.switch_to.alert.accept()
        wait_for(lambda: not (rx.recordings / first["wav"]).exists(), what="the file gone")
        wait_for(lambda: not browser.find_elements("css selector", f'li.rec[data-id="{first["wav"][:-4]}"]'),
                 what="the row gone")
        assert (rx.recordings / second["wav"]).exists()
        assert browser.find_elements("css selector", f'li.rec[data-id="{second["wav"][:-4]}"]')
        board.close()


def test_the_log_in_wall_holds_on_a_non_loopback_bind(browser, tmp_path):
    set_password(tmp_path / "state")
    with receiver(tmp_path, web="0.0.0.0:0") as rx:
        board = Board(rx.port, rx.state, "kitchen")
        board.session(1.0)
        [meta] = recordings.sessions(rx.recordings)
        base = f"http://127.0.0.1:{rx.web_port}"
        browser.get(base + "/")
        assert browser.current_url == base + "/login"
        assert "kitchen" not in browser.page_source and meta["wav"] not in browser.page_source
        browser.get(f"{base}/recordings/{meta['wav']}")
        assert "log in first" in browser.page_source and "RIFF" not in browser.page_source
        browser.get(base + "/login")
        field = browser.find_element("name", "password")
        field.send_keys("not the password")
        field.submit()
        wait_for(lambda: "Wrong password." in browser.page_source, what="the refusal")
        assert "kitchen" not in browser.page_source
        field = browser.find_element("name", "password")
        field.send_keys(PASSWORD)
        field.submit()
        wait_for(lambda: browser.find_elements("css selector", 'article.board[data-board="kitchen"]'),
                 what="the page after log-in")
        assert browser.find_elements("css selector", f'li.rec[data-id="{meta["wav"][:-4]}"]')
        browser.find_element("css selector", "header form button").click()  # log out
        wait_for(lambda: browser.current_url == base + "/login", what="the log-in page")
        browser.get(base + "/")
        assert browser.current_url == base + "/login"
        board.close()
