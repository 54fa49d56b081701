# The web page's server (aiohttp), on the receiver's own event loop. It shows private
# recordings, so:
#   - it listens on loopback unless a password is set (`earshot web-password`); with one
#     set, every request but the log-in page, the script and the style sheet needs a
#     session, wherever it listens. Without one (loopback only) a browser gets a session
#     by opening the page, and a request that did not come from the page (a cross-site
#     <audio>, a script on another site) carries no cookie and gets nothing;
#   - on loopback the Host header must name loopback (a DNS-rebinding site cannot reach it);
#   - the session cookie is HttpOnly and SameSite=Strict. It cannot be Secure: the page is
#     plain HTTP (reach a remote receiver through an SSH tunnel or a TLS proxy);
#   - every change is a POST with the session's CSRF token, from this origin;
#   - log-in attempts are rate-limited (per address and in all) and checked one at a time;
#   - session names in URLs must name a stored session exactly, so no path leaves the
#     recordings folder;
#   - a strict Content-Security-Policy: the page's script and style are files, no inline.
# An unauthenticated request gets a 401 or the log-in page: no audio byte, no metadata.
import asyncio
import hmac
import ipaddress
import json
import re
import secrets
import time
import zipfile
from collections import deque
from io import BytesIO
from pathlib import Path

from aiohttp import web

from host_tools import recordings
from host_tools.errors import CommandError
from host_tools.pairing import DEVICE_NAME
from host_tools.web import password, view
from host_tools.web.history import SessionLog

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"page.js": "text/javascript", "page.css": "text/css", "favicon.svg": "image/svg+xml"}
COOKIE = "earshot_session"
SESSION_IDLE_S = 12 * 3600
MAX_SESSIONS = 64
LOGIN_WINDOW_S = 15 * 60
LOGIN_FAILURES_PER_ADDRESS = 5  # in LOGIN_WINDOW_S
LOGIN_FAILURES_IN_ALL = 20
KEEPALIVE_S = 15.0
POLL_S = 2.0  # changes made by other processes (`earshot recordings delete`, `pair`)
MAX_BODY = 16 * 1024
STEM = re.compile(r"[A-Za-z0-9_-]{1,32}-[0-9]{8}-[0-9]{6}-[0-9]{1,10}(-[0-9]{1,6})?")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
           "Cross-Origin-Resource-Policy": "same-origin"}


class WebPage:
    """The page of one Receiver; from its loop: check(), await start(), await stop()."""

    def __init__(self, receiver, host, port):
        self.rx = receiver
        self.host, self.port = host, port
        self.loopback = is_loopback(self.host)
        self.history = SessionLog(receiver.directory)
        self._sessions = {}  # cookie value -> _Session
        self._failures = deque()  # (monotonic time, address) of failed log-ins
        self._login_lock = asyncio.Lock()
        self._clients = set()  # a _Stream per open event stream
        self._closing = False
        self._runner = self._poller = None
        self._password_cache = (None, None)
        receiver.watch(self.changed)

    # --- life

    def check(self):
        """CommandError if the password file is damaged, or this address needs a password
        and none is set."""
        if password.load(self.rx.registry.state) is None and not self.loopback:
            raise CommandError(f"--web {self.host}:{self.port} is not loopback: set a password first with "
                               "`earshot web-password`, or serve the page on 127.0.0.1")

    async def start(self):
        self.check()
        self._closing = False
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY)
        app.add_routes([
            web.get("/", self._page), web.get("/login", self._login_form), web.post("/login", self._login),
            web.post("/logout", self._logout), web.get("/events", self._events),
            web.get("/static/{name}", self._static),
            web.get(r"/recordings/{stem}.wav", self._audio), web.get("/recordings/{stem}/export", self._export),
            web.post("/recordings/{stem}/delete", self._delete), web.post("/boards/{name}/unpair", self._unpair),
        ])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise CommandError(f"--web {self.host}:{self.port}: {e.strerror or e}; "
                               "choose another port, or --no-web") from None
        self.port = self._runner.addresses[0][1]
        self._poller = asyncio.create_task(self._poll())

    def say_listening(self):
        self._say("listening", url=f"http://{_url_host(self.host)}:{self.port}/",
                  login="password" if self._password() is not None else "none")

    def _say(self, event, **fields):
        self.rx.say(f"web {event}", **fields)

    async def stop(self):
        if self._runner is None:
            return
        self._poller.cancel()
        await asyncio.gather(self._poller, return_exceptions=True)
        self._closing = True  # the event streams end by themselves once woken
        self.changed()
        await self._runner.cleanup()
        self._runner = None

    def changed(self):
        # The receiver's boards, sessions or log changed: every open page hears it.
        for stream in self._clients:
            stream.changed = True
            stream.wake.set()

    async def _poll(self):
        # What other processes change: the session log, the folder, the paired registry;
        # and a keep-alive line now and then on every event stream (a dead one then ends).
        folder, registry = self.rx.directory, self.rx.registry.state / "devices.json"
        seen, quiet = None, 0.0
        while True:
            now = (self.history.stamp(), _mtime(folder), _mtime(registry))
            if seen is not None and now != seen:
                self.changed()
            seen = now
            quiet += POLL_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                for stream in self._clients:
                    stream.wake.set()
            await asyncio.sleep(POLL_S)

    # --- every request

    @web.middleware
    async def _guard(self, request, handler):
        if not self._host_allowed(request.host):
            return _secure(web.Response(status=421, text="this page answers only on loopback addresses\n"))
        try:
            response = await handler(request)
        except web.HTTPException as e:
            _secure(e)
            raise
        return _secure(response)

    def _host_allowed(self, host):
        # On loopback, a browser that reached us by a name other than loopback's was led
        # here by DNS rebinding: refused. Elsewhere the password guards the page.
        if not self.loopback:
            return True
        names = {"127.0.0.1", "localhost", "[::1]", _url_host(self.host)}
        return host in {f"{n}:{self.port}" for n in names} | (names if self.port == 80 else set())

    def _password(self):
        # The stored hash, re-read when its file changes (`earshot web-password` on a live
        # receiver). A file damaged since the start keeps the page locked: no log-in works.
        path = self.rx.registry.state / password.FILE
        stamp = _mtime(path)
        if stamp != self._password_cache[0]:
            try:
                record = password.load(self.rx.registry.state)
            except CommandError as e:
                self._say("password_unusable", error=e)
                record = _DAMAGED
            self._password_cache = (stamp, record)
        return self._password_cache[1]

    def _login_needed(self):
        return self._password() is not None or not self.loopback

    def _session(self, request):
        # The request's valid session, or None.
        sid = request.cookies.get(COOKIE)
        session = self._sessions.get(sid) if sid else None
        if session is None:
            return None
        if time.monotonic() - session.seen > SESSION_IDLE_S:
            del self._sessions[sid]
            return None
        session.seen = time.monotonic()
        return session

    def _new_session(self, response):
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        session = self._sessions[sid] = _Session()
        response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/")
        return session

    async def _changing(self, request):
        # The session of a POST that may change something, or None: it must carry the
        # session's CSRF token and come from this page's origin.
        session = self._session(request)
        if session is None or not _same_origin(request):
            return None
        form = await request.post()
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return None
        return session

    # --- pages

    async def _page(self, request):
        session = self._session(request)
        if session is None and self._login_needed():
            raise web.HTTPSeeOther("/login")
        response = web.Response(content_type="text/html", headers={"Cache-Control": "no-store"})
        if session is None:
            session = self._new_session(response)
        response.text = view.page(self._snapshot(), session.csrf, logout=self._login_needed())
        return response

    async def _login_form(self, request):
        if not self._login_needed() or self._session(request) is not None:
            raise web.HTTPSeeOther("/")
        return web.Response(content_type="text/html", text=view.login_page())

    async def _login(self, request):
        if not _same_origin(request):
            return web.Response(status=403, text="log in from the page itself\n")
        form = await request.post()
        given = form.get("password")
        address = request.remote or "?"
        async with self._login_lock:  # one scrypt at a time: guessing cannot take the machine's memory
            wait = self._locked_out(address)
            if wait:
                self._say("login_refused", peer=address, reason="too many failed attempts")
                return web.Response(status=429, content_type="text/html", headers={"Retry-After": str(wait)},
                                    text=view.login_page(f"Too many failed attempts: try again in {wait} s."))
            record = self._password()
            ok = record not in (None, _DAMAGED) and isinstance(given, str) and \
                await asyncio.get_running_loop().run_in_executor(None, password.verify, record, given)
            if not ok:
                self._failures.append((time.monotonic(), address))
                self._say("login_failed", peer=address)
                message = "Wrong password." if record is not None else \
                    "No password is set: run `earshot web-password` on the receiver."
                return web.Response(status=401, content_type="text/html", text=view.login_page(message))
        self._failures = deque(f for f in self._failures if f[1] != address)
        self._say("login", peer=address)
        response = web.Response(status=303, headers={"Location": "/"})
        self._new_session(response)
        return response

    def _locked_out(self, address):
        # Seconds until this address may try again, or 0.
        now = time.monotonic()
        while self._failures and now - self._failures[0][0] > LOGIN_WINDOW_S:
            self._failures.popleft()
        mine = [t for t, a in self._failures if a == address]
        if len(mine) >= LOGIN_FAILURES_PER_ADDRESS:
            return int(mine[-LOGIN_FAILURES_PER_ADDRESS] + LOGIN_WINDOW_S - now) + 1
        if len(self._failures) >= LOGIN_FAILURES_IN_ALL:
            return int(self._failures[-LOGIN_FAILURES_IN_ALL][0] + LOGIN_WINDOW_S - now) + 1
        return 0

    async def _logout(self, request):
        if await self._changing(request) is None:
            return _forbidden()
        self._sessions.pop(request.cookies.get(COOKIE), None)
        self.changed()  # its open event stream ends
        response = web.Response(status=303, headers={"Location": "/login" if self._login_needed() else "/"})
        response.del_cookie(COOKIE, path="/")
        return response

    async def _static(self, request):
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=ASSETS[name],
                            headers={"Cache-Control": "no-cache"})

    # --- live updates

    async def _events(self, request):
        session = self._session(request)
        if session is None:
            return _unauthorized()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        stream = _Stream()  # changed: the first update at once, the page may be older than now
        self._clients.add(stream)
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing:
                await stream.wake.wait()
                stream.wake.clear()
                if self._closing or self._sessions.get(request.cookies.get(COOKIE)) is not session:
                    break  # stopping, logged out or expired: the stream ends, the page says so
                if not stream.changed:
                    await response.write(b": keepalive\n\n")
                    continue
                stream.changed = False
                session.seen = time.monotonic()
                parts = view.render_parts(self._snapshot(), session.csrf, stream.known)
                stream.known = {row_id for row_id, _ in parts["recordings"]["rows"]}
                data = json.dumps({"parts": parts, "at": time.time()})
                await response.write(f"event: update\ndata: {data}\n\n".encode())
        except ConnectionError:
            pass  # the page was closed
        finally:
            self._clients.discard(stream)
        return response

    def _snapshot(self):
        return view.snapshot(self.rx, self.history)

    # --- recordings

    def _stored(self, stem):
        # The stored session with exactly this name, or None: nothing else is ever opened.
        if not STEM.fullmatch(stem):
            return None
        folder = self.rx.directory
        for meta in recordings.sessions(folder):
            if meta["wav"] == stem + ".wav" and (folder / meta["wav"]).resolve().parent == folder.resolve():
                return meta
        return None

    async def _audio(self, request):
        if self._session(request) is None:
            return _unauthorized()
        meta = self._stored(request.match_info["stem"])
        if meta is None:
            raise web.HTTPNotFound()
        # FileResponse answers Range requests (206), so the player can seek.
        return web.FileResponse(self.rx.directory / meta["wav"],
                                headers={"Content-Type": "audio/wav", "Cache-Control": "no-store"})

    async def _export(self, request):
        if self._session(request) is None:
            return _unauthorized()
        stem = request.match_info["stem"]
        meta = self._stored(stem)
        if meta is None:
            raise web.HTTPNotFound()
        body = await asyncio.get_running_loop().run_in_executor(None, _zip, self.rx.directory, meta)
        return web.Response(body=body, content_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="{stem}.zip"', "Cache-Control": "no-store"})

    async def _delete(self, request):
        if await self._changing(request) is None:
            return _forbidden()
        stem = request.match_info["stem"]
        meta = self._stored(stem)
        if meta is None:
            raise web.HTTPNotFound()
        # The CLI's delete: zeroed, synced, unlinked, one line in the session log.
        await asyncio.get_running_loop().run_in_executor(
            None, recordings.delete, self.rx.directory, meta, "deleted on the web page")
        self._say("deleted", session=stem, peer=request.remote)
        self.changed()
        raise web.HTTPSeeOther("/#recordings")

    async def _unpair(self, request):
        if await self._changing(request) is None:
            return _forbidden()
        name = request.match_info["name"]
        if not DEVICE_NAME.fullmatch(name) or name not in self.rx.registry.devices():
            raise web.HTTPNotFound()
        self.rx.registry.unpair(name)
        self.rx.disconnect(name)
        self._say("unpaired", device=name, peer=request.remote)
        self.changed()
        raise web.HTTPSeeOther("/#pairing")


_DAMAGED = {"damaged": True}  # a password file that cannot be read: set, but nothing matches it


class _Stream:
    def __init__(self):
        self.wake = asyncio.Event()
        self.wake.set()
        self.changed = True
        self.known = None  # the recordings' row ids this page has been sent


class _Session:
    def __init__(self):
        self.csrf = secrets.token_urlsafe(32)
        self.seen = time.monotonic()


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _url_host(host):
    return f"[{host}]" if ":" in host else host


def _same_origin(request):
    # Browsers send Origin (and Sec-Fetch-Site) with every POST; what they say must be us.
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"http://{request.host}":
        return False
    return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")


def _secure(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _unauthorized():
    return web.Response(status=401, text="log in first\n", headers={"Cache-Control": "no-store"})


def _forbidden():
    return web.Response(status=403, text="refused: this change did not come from the page (log in again)\n")


def _zip(folder, meta):
    # The session's WAV and its metadata, as `earshot recordings export` copies them.
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name in (meta["wav"], meta["wav"][:-4] + ".json"):
            z.write(folder / name, name)
    return out.getvalue()


def _mtime(path):
    try:
        return Path(path).stat().st_mtime_ns
    except OSError:
        return None
