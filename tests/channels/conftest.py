"""Real servers on 127.0.0.1 standing in for the services the channels talk to.

- SMTP: aiosmtpd with STARTTLS (a trustme certificate) and AUTH, one with implicit TLS, and a
  plain one.
- Slack and Teams: threading HTTP servers that check payloads the way the services do
  (Slack's Block Kit limits; the Adaptive Card 1.4 schema for Teams) and refuse bad ones.
- Twilio: a fake Messages API that the unmodified `twilio` client reaches through
  TWILIO_API_BASE_URL; it checks Basic auth, To, From, and Body or ContentSid.

Each server can be scripted to answer the next requests with failures, and every contract
test drives the channels through a `Harness` built on them.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.conftest import REPO_ROOT

SLACK_TOKEN = "xq7TOKENslackSECRET0123456789"
SLACK_PATH = f"/services/T0TESTTEAM/B0TESTHOOK/{SLACK_TOKEN}"
TEAMS_SIG = "sIgTeamsSECRET0123456789abcdefXYZ"
TEAMS_PATH = (
    "/workflows/0f6a2c1e9b7d4e3f8a5b6c7d8e9f0a1b/triggers/manual/paths/invoke"
    f"?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"
)
SMTP_USER = "alerts"
SMTP_PASSWORD = "smtp-S3cret-passw0rd-XYZ"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilioAUTHtokenSECRET0123456789"
TWILIO_FROM = "+14155238886"
WHATSAPP_TO = "+447700900123"
EMAIL_TO = "oncall@example.com"

WEBHOOK_TOKEN = "whTOKENgenericSECRET0123456789"
WEBHOOK_PATH = f"/hooks/alerts/{WEBHOOK_TOKEN}"
WEBHOOK_SECRET = "whsec-SIGNING-secret-0123456789"
PD_ROUTING_KEY = "R0UT1NGkeyPAGERDUTYsecret0123456"
APPRISE_TOKEN = "appriseTOKENsecret0123456789XYZ"

ADAPTIVE_CARD_SCHEMA = REPO_ROOT / "tests" / "fixtures" / "adaptive-card-1.4.json"
ALL_SECRETS = [
    SLACK_TOKEN,
    TEAMS_SIG,
    SMTP_PASSWORD,
    TWILIO_TOKEN,
    WEBHOOK_TOKEN,
    WEBHOOK_SECRET,
    PD_ROUTING_KEY,
    APPRISE_TOKEN,
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeTime:
    """A monotonic clock that moves only when sleep() is called; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


# --------------------------------------------------------------------------- HTTP


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


@dataclass
class Reply:
    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain; charset=utf-8"


class LoopbackHTTPServer:
    """A threading HTTP server on 127.0.0.1 that records requests and answers from a script.

    `check(request)` returns a Reply refusing an invalid request (as the real service would),
    or None; otherwise the next scripted reply, else `default`.
    """

    def __init__(
        self, default: Reply, check: Callable[[Received], Reply | None] | None = None
    ) -> None:
        self.default = default
        self.check = check
        self.requests: list[Received] = []
        self.replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(
                    "POST",
                    self.path,
                    dict(self.headers.items()),
                    self.rfile.read(length),
                    time.monotonic(),
                )
                reply = owner._answer(received)
                body = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def _answer(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            refusal = self.check(received) if self.check else None
            if refusal is not None:
                return refusal
            return self.replies.popleft() if self.replies else self.default

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> LoopbackHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# Slack's documented Block Kit limits, checked the way Slack refuses: 400 invalid_blocks.
def slack_payload_problems(payload: Any) -> list[str]:
    problems = []
    if not isinstance(payload.get("text"), str) or not payload["text"]:
        problems.append("no text fallback")
    blocks = [b for a in payload.get("attachments", []) for b in a.get("blocks", [])]
    blocks += payload.get("blocks", [])
    if not blocks or len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks")
    for block in blocks:
        kind = block["type"]
        if kind == "header" and (
            block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150
        ):
            problems.append("header")
        if kind == "section":
            if "text" in block and not 0 < len(block["text"]["text"]) <= 3000:
                problems.append("section text length")
            fields = block.get("fields", [])
            if len(fields) > 10 or any(len(f["text"]) > 2000 for f in fields):
                problems.append("fields")
            if "text" not in block and not fields:
                problems.append("empty section")
        if kind == "context" and not 0 < len(block["elements"]) <= 10:
            problems.append("context")
        if kind not in ("header", "section", "context", "divider"):
            problems.append(f"unexpected block {kind}")
    return problems


def slack_check(received: Received) -> Reply | None:
    if received.headers.get("Content-Type", "").split(";")[0] != "application/json":
        return Reply(400, "invalid_payload")
    try:
        payload = received.json()
    except ValueError:
        return Reply(400, "invalid_payload")
    if slack_payload_problems(payload):
        return Reply(400, "invalid_blocks")
    return None


def start_slack() -> LoopbackHTTPServer:
    """Slack's incoming webhook: 200 `ok`, or 400 for payloads Slack would refuse."""
    return LoopbackHTTPServer(Reply(200, "ok"), slack_check).start()


@pytest.fixture
def slack_server() -> Iterator[LoopbackHTTPServer]:
    server = start_slack()
    yield server
    server.stop()


def load_card_validator() -> Any:
    import jsonschema

    schema = json.loads(ADAPTIVE_CARD_SCHEMA.read_text())
    return jsonschema.Draft6Validator(schema)


@pytest.fixture(scope="session")
def card_validator() -> Any:
    return load_card_validator()


def teams_payload_problems(payload: Any, validator: Any) -> list[str]:
    problems = []
    if payload.get("type") != "message":
        problems.append("type is not message")
    attachments = payload.get("attachments") or []
    if len(attachments) != 1:
        problems.append("expected one attachment")
    for attachment in attachments:
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            problems.append("contentType")
        card = dict(attachment.get("content") or {})
        if card.get("version") != "1.4":
            problems.append("card version")
        card.pop("msteams", None)  # Teams' extension, not part of the Adaptive Card schema
        problems.extend(error.message for error in validator.iter_errors(card))
    if len(json.dumps(payload).encode()) >= 28 * 1024:
        problems.append("payload too large")
    return problems


def start_teams(card_validator: Any) -> LoopbackHTTPServer:
    """A Workflows webhook: 202, or 400 when the envelope or the card is not valid."""

    def check(received: Received) -> Reply | None:
        try:
            problems = teams_payload_problems(received.json(), card_validator)
        except ValueError:
            problems = ["not JSON"]
        if problems:
            body = json.dumps(
                {"error": {"code": "InvalidRequestContent", "message": "; ".join(problems)}}
            )
            return Reply(400, body, content_type="application/json")
        return None

    return LoopbackHTTPServer(Reply(202, ""), check).start()


@pytest.fixture
def teams_server(card_validator: Any) -> Iterator[LoopbackHTTPServer]:
    server = start_teams(card_validator)
    yield server
    server.stop()


def twilio_error(status: int, code: int, message: str, **headers: str) -> Reply:
    body = json.dumps(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )
    return Reply(status, body, headers, "application/json")


def twilio_check(received: Received) -> Reply | None:
    if received.path.split("?")[0] != f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
        return twilio_error(404, 20404, "The requested resource was not found")
    expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    if received.headers.get("Authorization") != expected:
        return twilio_error(401, 20003, "Authenticate")
    form = received.form()
    if not form.get("To", "").startswith("whatsapp:+"):
        return twilio_error(400, 21211, "The 'To' number is not a valid phone number.")
    if not form.get("From", "").startswith("whatsapp:+"):
        return twilio_error(400, 21212, "The 'From' number is not a valid phone number.")
    if not form.get("Body") and not form.get("ContentSid"):
        return twilio_error(400, 21619, "A text message body or media urls must be specified.")
    if form.get("ContentSid"):
        json.loads(form.get("ContentVariables", "{}"))
    return None


def twilio_message(form: dict[str, str] | None = None) -> str:
    form = form or {}
    return json.dumps(
        {
            "sid": "SM" + "f" * 32,
            "account_sid": TWILIO_SID,
            "to": form.get("To", ""),
            "from": form.get("From", ""),
            "body": form.get("Body", ""),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": "Thu, 01 Aug 2024 12:00:00 +0000",
            "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/SM{'f' * 32}.json",
        }
    )


def start_twilio() -> LoopbackHTTPServer:
    """The Messages API: 201 with a message resource, or Twilio's error for a bad request."""
    return LoopbackHTTPServer(
        Reply(201, twilio_message(), content_type="application/json"), twilio_check
    ).start()


@pytest.fixture
def twilio_server() -> Iterator[LoopbackHTTPServer]:
    server = start_twilio()
    yield server
    server.stop()


# --------------------------------------------------------------------------- SMTP


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: str | None


class SMTPRecorder:
    """aiosmtpd handler: records accepted messages; answers RCPT from a script or a refusal
    list."""

    def __init__(self) -> None:
        self.messages: list[Delivered] = []
        self.rcpt_replies: deque[str] = deque()
        self.refused: dict[str, str] = {}
        self.rcpt_count = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.rcpt_count += 1
        if self.rcpt_replies:
            return self.rcpt_replies.popleft()
        if address in self.refused:
            return self.refused[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        self.messages.append(
            Delivered(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                login,
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class SMTPServer:
    recorder: SMTPRecorder
    port: int
    environ: dict[str, str]


def make_tls_material(directory: Path) -> tuple[Any, Path]:
    """A private CA (its PEM written to directory) and a server certificate for 127.0.0.1."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, ca_file


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    return make_tls_material(tmp_path_factory.mktemp("ca"))


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = (
        isinstance(auth, LoginPassword)
        and auth.login == SMTP_USER.encode()
        and auth.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth.login if ok else None)


def _start_smtp(**kwargs: Any) -> tuple[Any, SMTPRecorder, int]:
    from aiosmtpd.controller import Controller

    class QuietController(Controller):
        def factory(self) -> Any:
            # Implicit TLS with AUTH trips aiosmtpd's "AUTH without STARTTLS" warning.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
                return super().factory()

    recorder = SMTPRecorder()
    port = free_port()
    controller = QuietController(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, recorder, port


def _server_context(cert: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def start_smtp_starttls(cert: Any, ca_file: Path) -> tuple[Any, SMTPServer]:
    """STARTTLS required, AUTH required (only over TLS), certificate from a private CA.
    Returns the aiosmtpd controller (to stop) and the server's recorder and settings."""
    controller, recorder, port = _start_smtp(
        tls_context=_server_context(cert),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
    )
    environ = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_USERNAME": SMTP_USER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_FROM": "Data Alerts <alerts@example.com>",
        "SMTP_CA_BUNDLE": str(ca_file),
        "SMTP_TIMEOUT": "5",
    }
    return controller, SMTPServer(recorder, port, environ)


@pytest.fixture
def smtp_starttls(tls_material: tuple[Any, Path]) -> Iterator[SMTPServer]:
    controller, server = start_smtp_starttls(*tls_material)
    yield server
    controller.stop()


@pytest.fixture
def smtp_implicit_tls(tls_material: tuple[Any, Path]) -> Iterator[SMTPServer]:
    """TLS from the first byte (what port 465 does), with AUTH."""
    cert, ca_file = tls_material
    controller, recorder, port = _start_smtp(
        ssl_context=_server_context(cert),
        auth_required=True,
        # aiosmtpd only counts STARTTLS as TLS for AUTH; this session is TLS from the start.
        auth_require_tls=False,
        authenticator=_authenticator,
    )
    environ = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "ssl",
        "SMTP_USERNAME": SMTP_USER,
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "SMTP_FROM": "alerts@example.com",
        "SMTP_CA_BUNDLE": str(ca_file),
        "SMTP_TIMEOUT": "5",
    }
    yield SMTPServer(recorder, port, environ)
    controller.stop()


@pytest.fixture
def smtp_plain() -> Iterator[SMTPServer]:
    """A plain relay: no TLS, no AUTH (a trusted local MTA)."""
    controller, recorder, port = _start_smtp()
    environ = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "alerts@example.com",
        "SMTP_TIMEOUT": "5",
    }
    yield SMTPServer(recorder, port, environ)
    controller.stop()


# --------------------------------------------------------------------------- harnesses


@dataclass
class Harness:
    """One channel wired to its stand-in server, with ways to make the next sends fail."""

    name: str
    environ: dict[str, str]
    recipient: str
    fail_transient: Callable[[int], None]
    fail_permanent: Callable[[], None]
    echo_secret: Callable[[], None]
    attempts: Callable[[], int]
    delivered: Callable[[], int]
    #: Answer the next request with 429 and this Retry-After (HTTP channels only).
    retry_after: Callable[[str], None] | None = None
    arrivals: Callable[[], list[float]] | None = None


@pytest.fixture
def email_harness(smtp_starttls: SMTPServer) -> Harness:
    recorder = smtp_starttls.recorder

    def fail_transient(n: int) -> None:
        recorder.rcpt_replies.extend(["451 4.3.0 Mailbox temporarily unavailable"] * n)

    return Harness(
        name="email",
        environ=dict(smtp_starttls.environ),
        recipient=EMAIL_TO,
        fail_transient=fail_transient,
        fail_permanent=lambda: recorder.rcpt_replies.append("550 5.1.1 No such user here"),
        echo_secret=lambda: recorder.rcpt_replies.append(
            f"550 5.7.1 Refused: credentials {SMTP_USER}:{SMTP_PASSWORD} are not allowed"
        ),
        attempts=lambda: recorder.rcpt_count,
        delivered=lambda: len(recorder.messages),
    )


class _Outcomes:
    """Counts the requests a stand-in answered with success (refusals and scripted failures
    excluded)."""

    def __init__(self, server: LoopbackHTTPServer) -> None:
        self.server = server
        self.failures = 0
        original = server._answer

        def answer(received: Received) -> Reply:
            reply = original(received)
            if reply.status >= 300:
                self.failures += 1
            return reply

        server._answer = answer  # type: ignore[method-assign]

    def successes(self) -> int:
        return len(self.server.requests) - self.failures


def _http_harness(
    name: str,
    server: LoopbackHTTPServer,
    environ: dict[str, str],
    recipient: str,
    *,
    transient: Callable[[], Reply],
    permanent: Reply,
    echo: Reply,
    throttled: Callable[[str], Reply],
) -> Harness:
    outcomes = _Outcomes(server)
    return Harness(
        name=name,
        environ=environ,
        recipient=recipient,
        fail_transient=lambda n: server.script(*[transient() for _ in range(n)]),
        fail_permanent=lambda: server.script(permanent),
        echo_secret=lambda: server.script(echo),
        attempts=lambda: len(server.requests),
        delivered=outcomes.successes,
        retry_after=lambda value: server.script(throttled(value)),
        arrivals=lambda: [r.at for r in server.requests],
    )


@pytest.fixture
def slack_harness(slack_server: LoopbackHTTPServer) -> Harness:
    url = slack_server.url(SLACK_PATH)
    return _http_harness(
        "slack",
        slack_server,
        {"SLACK_WEBHOOK_URL": url},
        url,
        transient=lambda: Reply(503, "service_unavailable"),
        permanent=Reply(404, "no_service"),
        echo=Reply(403, f"invalid_token: {url} ({SLACK_TOKEN})"),
        throttled=lambda value: Reply(429, "rate_limited", {"Retry-After": value}),
    )


@pytest.fixture
def teams_harness(teams_server: LoopbackHTTPServer) -> Harness:
    url = teams_server.url(TEAMS_PATH)
    error = json.dumps({"error": {"code": "WorkflowTriggerIsNotEnabled", "message": "disabled"}})
    echo = json.dumps({"error": {"code": "DirectApiAuthorizationRequired", "message": url}})
    return _http_harness(
        "teams",
        teams_server,
        {"TEAMS_WEBHOOK_URL": url},
        url,
        transient=lambda: Reply(503, "Service Unavailable"),
        permanent=Reply(400, error, content_type="application/json"),
        echo=Reply(401, echo, content_type="application/json"),
        throttled=lambda value: Reply(429, "Too Many Requests", {"Retry-After": value}),
    )


def twilio_environ(server: LoopbackHTTPServer) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_WHATSAPP_FROM": TWILIO_FROM,
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{server.port}",
        "TWILIO_TIMEOUT": "5",
    }


@pytest.fixture
def whatsapp_harness(twilio_server: LoopbackHTTPServer) -> Harness:
    return _http_harness(
        "whatsapp",
        twilio_server,
        twilio_environ(twilio_server),
        WHATSAPP_TO,
        transient=lambda: twilio_error(503, 20500, "Service Unavailable"),
        permanent=twilio_error(400, 21211, "The 'To' number is not a valid phone number."),
        echo=twilio_error(401, 20003, f"Authenticate: token {TWILIO_TOKEN} rejected"),
        throttled=lambda value: twilio_error(
            429, 20429, "Too Many Requests", **{"Retry-After": value}
        ),
    )


# --------------------------------------------------------------------------- on-call channels


def webhook_check(received: Received) -> Reply | None:
    """A receiver that verifies the signature the README documents, then the native body."""
    from datamantri_alerts.channels.webhook import verify

    if not verify(received.body, received.headers, WEBHOOK_SECRET, now=time.time()):
        return Reply(401, "bad signature")
    try:
        body = received.json()
    except ValueError:
        return Reply(400, "not JSON")
    missing = sorted(set(NATIVE_FIELDS) - set(body))
    if missing or body["version"] != "1":
        return Reply(400, f"missing fields: {missing}")
    return None


NATIVE_FIELDS = (
    "version",
    "source",
    "event",
    "state",
    "severity",
    "alert",
    "labels",
    "summary",
    "details",
    "episode_id",
    "times",
    "host",
    "text",
)


def start_webhook() -> LoopbackHTTPServer:
    return LoopbackHTTPServer(Reply(204, ""), webhook_check).start()


@pytest.fixture
def webhook_server() -> Iterator[LoopbackHTTPServer]:
    server = start_webhook()
    yield server
    server.stop()


def webhook_recipient(url: str) -> str:
    """A signed webhook recipient as stored (what `recipient_list` gives)."""
    return json.dumps({"secret": "${WEBHOOK_SECRET}", "url": url}, sort_keys=True)


@pytest.fixture
def webhook_harness(webhook_server: LoopbackHTTPServer) -> Harness:
    url = webhook_server.url(WEBHOOK_PATH)
    return _http_harness(
        "webhook",
        webhook_server,
        {"WEBHOOK_SECRET": WEBHOOK_SECRET},
        webhook_recipient(url),
        transient=lambda: Reply(503, "Service Unavailable"),
        permanent=Reply(410, "gone"),
        echo=Reply(403, f"forbidden: {url} secret={WEBHOOK_SECRET}"),
        throttled=lambda value: Reply(429, "slow down", {"Retry-After": value}),
    )


class PagerDutyStandIn(LoopbackHTTPServer):
    """The Events API v2: validates events as PagerDuty documents them and keeps incidents by
    dedup_key (a trigger on an open key is folded into it; acknowledge marks an open one
    acknowledged; resolve closes it). `actions[key]` lists every accepted event's action on a
    key, in order; an acknowledge or resolve of a key with no open incident is accepted and
    changes nothing, as PagerDuty does."""

    def __init__(self) -> None:
        super().__init__(Reply(202, ""), self._check)
        self.opened = 0
        self.incidents: dict[str, dict[str, Any]] = {}
        self.actions: dict[str, list[str]] = {}

    def _check(self, received: Received) -> Reply | None:
        problems = self.problems(received)
        if problems:
            body = {"status": "invalid event", "message": "Event object is invalid"}
            return Reply(400, json.dumps({**body, "errors": problems}), {}, "application/json")
        return None

    def problems(self, received: Received) -> list[str]:
        if received.path != "/v2/enqueue":
            return [f"unknown path {received.path}"]
        try:
            event = received.json()
        except ValueError:
            return ["body is not JSON"]
        problems = []
        if event.get("routing_key") != PD_ROUTING_KEY:
            problems.append("Invalid routing key")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            problems.append("'event_action' is invalid")
        key = event.get("dedup_key")
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            problems.append("'dedup_key' is invalid")
        if action in ("acknowledge", "resolve"):
            # Documented shape: routing_key, event_action, dedup_key (a payload is for triggers).
            extra = sorted(set(event) - {"routing_key", "event_action", "dedup_key"})
            if extra:
                problems.append(f"unexpected fields for {action}: {', '.join(extra)}")
        if action == "trigger":
            payload = event.get("payload") or {}
            summary = payload.get("summary")
            if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
                problems.append("'payload.summary' is missing or longer than 1024")
            if not payload.get("source"):
                problems.append("'payload.source' is missing")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                problems.append("'payload.severity' is invalid")
        if len(received.body) > 512 * 1024:
            problems.append("event is larger than 512 KB")
        return problems

    def _answer(self, received: Received) -> Reply:
        reply = super()._answer(received)
        if reply.status == 202:
            with self._lock:
                event = received.json()
                key = event["dedup_key"]
                self.actions.setdefault(key, []).append(event["event_action"])
                incident = self.incidents.get(key)
                if event["event_action"] == "trigger":
                    if incident is None or incident["status"] == "resolved":
                        self.opened += 1
                        self.incidents[key] = {"status": "triggered", "events": 1}
                    else:
                        incident["events"] += 1
                elif incident is not None and incident["status"] != "resolved":
                    incident["status"] = (
                        "resolved" if event["event_action"] == "resolve" else "acknowledged"
                    )
            body = {"status": "success", "message": "Event processed", "dedup_key": key}
            return Reply(202, json.dumps(body), {}, "application/json")
        return reply


@pytest.fixture
def pagerduty_server() -> Iterator[PagerDutyStandIn]:
    server = PagerDutyStandIn().start()
    assert isinstance(server, PagerDutyStandIn)
    yield server
    server.stop()


def pagerduty_environ(server: LoopbackHTTPServer) -> dict[str, str]:
    return {
        "PAGERDUTY_ROUTING_KEY": PD_ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": server.url("/v2/enqueue"),
    }


@pytest.fixture
def pagerduty_harness(pagerduty_server: PagerDutyStandIn) -> Harness:
    error = {"status": "throttle exceeded", "message": "Requests for this service are arriving"}
    echo = {"status": "invalid event", "message": f"bad key {PD_ROUTING_KEY}", "errors": []}
    return _http_harness(
        "pagerduty",
        pagerduty_server,
        pagerduty_environ(pagerduty_server),
        "${PAGERDUTY_ROUTING_KEY}",
        transient=lambda: Reply(502, "Bad Gateway"),
        permanent=Reply(
            400,
            json.dumps({"status": "invalid event", "message": "Event object is invalid"}),
            content_type="application/json",
        ),
        echo=Reply(400, json.dumps(echo), content_type="application/json"),
        throttled=lambda value: Reply(
            429, json.dumps(error), {"Retry-After": value}, "application/json"
        ),
    )


def apprise_check(received: Received) -> Reply | None:
    """Apprise's json:// body: version, title, message, type."""
    try:
        body = received.json()
    except ValueError:
        return Reply(400, "not JSON")
    if body.get("type") not in ("info", "success", "warning", "failure"):
        return Reply(400, "bad type")
    if not isinstance(body.get("message"), str) or not body["message"]:
        return Reply(400, "no message")
    return None


@pytest.fixture
def apprise_server() -> Iterator[LoopbackHTTPServer]:
    server = LoopbackHTTPServer(Reply(200, "{}"), apprise_check).start()
    yield server
    server.stop()


def apprise_url(port: int) -> str:
    return f"json://127.0.0.1:{port}/apprise/{APPRISE_TOKEN}"


@pytest.fixture
def apprise_harness(apprise_server: LoopbackHTTPServer) -> Harness:
    return _http_harness(
        "apprise",
        apprise_server,
        {"APPRISE_URL": apprise_url(apprise_server.port)},
        "${APPRISE_URL}",
        transient=lambda: Reply(503, "Service Unavailable"),
        permanent=Reply(404, "no such topic"),
        echo=Reply(401, f"token {APPRISE_TOKEN} refused"),
        throttled=lambda value: Reply(429, "slow down", {"Retry-After": value}),
    )


CHANNELS = ["email", "slack", "teams", "whatsapp", "webhook", "pagerduty", "apprise"]
#: The HTTP channels whose Retry-After reaches the retry policy (Apprise does not expose it).
HTTP_CHANNELS = ["slack", "teams", "whatsapp", "webhook", "pagerduty"]


@pytest.fixture(params=CHANNELS)
def harness(request: pytest.FixtureRequest) -> Harness:
    """Each channel in turn, wired to its stand-in server."""
    return request.getfixturevalue(f"{request.param}_harness")


@pytest.fixture(params=HTTP_CHANNELS)
def http_harness(request: pytest.FixtureRequest) -> Harness:
    """Each HTTP channel in turn (the ones whose services send Retry-After)."""
    return request.getfixturevalue(f"{request.param}_harness")


@pytest.fixture
def pacer() -> Any:
    """A fresh per-recipient pacer, so Slack's 1 msg/s from another test does not leak in."""
    from datamantri_alerts.channels.retry import RecipientPacer

    return RecipientPacer()


def sample_message(**overrides: Any) -> Any:
    from datetime import UTC, datetime

    from datamantri_alerts.channels.base import Message

    fields: dict[str, Any] = {
        "alert_id": 7,
        "alert_name": "Nightly ETL failed",
        "description": "The nightly ETL must not fail",
        "condition_type": "pipeline_failure",
        "severity": "critical",
        "state": "FIRING",
        "at": datetime(2024, 8, 1, 6, 30, tzinfo=UTC),
        "summary": "last run of xyz-789 failed",
        "details": {"pipeline_id": "xyz-789", "error": 'relation "orders" does not exist'},
        "host": "etl-runner-1",
    }
    fields.update(overrides)
    return Message(**fields)
