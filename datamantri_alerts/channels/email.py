"""Email over SMTP: multipart/alternative (text + HTML), STARTTLS or implicit TLS.

Settings: `SMTP_HOST`, `SMTP_PORT`, `SMTP_USERNAME`, `SMTP_PASSWORD`, `SMTP_FROM`,
`SMTP_SECURITY` (`starttls` | `ssl` | `none`; default `ssl` on port 465, else `starttls`),
`SMTP_CA_BUNDLE` (a PEM file of CA certificates for a private relay), `SMTP_TIMEOUT` (seconds,
default 20). The port defaults to 587 for STARTTLS, 465 for implicit TLS, 25 for none.
Certificates are always verified (hostname included); login happens when a username is set,
and a password is never sent without TLS except to a loopback relay.

One message per recipient, not one for all: the evaluator records a notification per
(channel, recipient), so each address gets its own outcome, its own retry and its own
"sent" mark. A refused or bouncing address then never makes the others fail or be sent
twice on retry, and recipients do not see each other's addresses.

Outcomes: a refused recipient, sender or message is transient on a 4xx reply and permanent on
5xx; authentication failures and certificate errors are permanent; disconnects, timeouts and
connection errors are transient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from datamantri_alerts.channels.base import (
    ChannelBase,
    ChannelConfig,
    DeliveryError,
    Digest,
    Message,
)
from datamantri_alerts.channels.recipients import as_list, is_loopback_host, validate_email

if TYPE_CHECKING:
    from email.message import EmailMessage

SUBJECT_LIMIT = 250
BODY_LIMIT = 200_000
SMTP_DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


class EmailConfig(ChannelConfig):
    channel: ClassVar[str] = "email"

    host: str = Field(alias="SMTP_HOST")
    port: int | None = Field(default=None, alias="SMTP_PORT", ge=1, le=65535)
    username: str | None = Field(default=None, alias="SMTP_USERNAME")
    password: SecretStr | None = Field(default=None, alias="SMTP_PASSWORD")
    sender: str | None = Field(default=None, alias="SMTP_FROM")
    security: Literal["starttls", "ssl", "none"] | None = Field(default=None, alias="SMTP_SECURITY")
    ca_bundle: str | None = Field(default=None, alias="SMTP_CA_BUNDLE")
    timeout: float = Field(default=20.0, alias="SMTP_TIMEOUT", gt=0, le=300)

    @model_validator(mode="before")
    @classmethod
    def _lowercase_security(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("SMTP_SECURITY"), str):
            data = {**data, "SMTP_SECURITY": data["SMTP_SECURITY"].strip().lower()}
        return data

    @model_validator(mode="after")
    def _sender_known(self) -> EmailConfig:
        if not self.sender and not (self.username and "@" in self.username):
            raise ValueError("SMTP_FROM is not set (and SMTP_USERNAME is not an address)")
        if self.ca_bundle:
            from pathlib import Path

            if not Path(self.ca_bundle).is_file():
                raise ValueError("SMTP_CA_BUNDLE names a file that does not exist")
        return self

    @property
    def effective_security(self) -> str:
        if self.security:
            return self.security
        return "ssl" if self.port == 465 else "starttls"

    @property
    def effective_port(self) -> int:
        return self.port or SMTP_DEFAULT_PORTS[self.effective_security]

    @property
    def from_header(self) -> str:
        return self.sender or self.username or ""

    @property
    def envelope_sender(self) -> str:
        from email.utils import parseaddr

        return parseaddr(self.from_header)[1] or self.from_header


class EmailChannel(ChannelBase):
    name: ClassVar[str] = "email"
    recipient_is_secret: ClassVar[bool] = False
    fallback_env: ClassVar[str | None] = None
    config_model: ClassVar[type[ChannelConfig]] = EmailConfig

    def normalize_recipients(self, value: Any) -> list[str]:
        return [validate_email(item) for item in as_list(value, "email addresses")]

    def recipient_list(self, value: Any) -> list[str]:
        return list(value or [])

    def send(self, message: Message, recipient: str, config: EmailConfig) -> None:
        self._send(build_email(message, recipient, config), recipient, config)

    def digest_pages(self, digest: Digest, config: EmailConfig) -> list[list[int]]:
        """One e-mail per recipient, whatever the count."""
        return [list(range(len(digest.messages)))]

    def send_digest(self, digest: Digest, recipient: str, config: EmailConfig) -> None:
        self._send(build_digest_email(digest, recipient, config), recipient, config)

    def _send(self, email: EmailMessage, recipient: str, config: EmailConfig) -> None:
        secrets = config.secret_values()
        try:
            _transmit(email, recipient, config)
        except DeliveryError:
            raise
        except Exception as exc:
            raise classify_smtp_error(exc, secrets) from None

    def preview(self, message: Message, config: EmailConfig) -> dict[str, Any]:
        subject, text, html = email_parts(message, config)
        return {"subject": subject, "text": text, "html": html}


def build_email(message: Message, recipient: str, config: EmailConfig) -> EmailMessage:
    subject, text, html = email_parts(message, config)
    email = _envelope(subject, recipient, config)
    email["X-Alerts-State"] = message.state
    email["X-Alerts-Severity"] = message.severity
    email.set_content(text + "\n")
    email.add_alternative(html, subtype="html")
    return email


def build_digest_email(digest: Digest, recipient: str, config: EmailConfig) -> EmailMessage:
    """One e-mail listing every notification of digest (subject, text and HTML from the
    `email/digest_*` templates)."""
    from datamantri_alerts.channels.render import render_digest, truncate

    def part(template: str) -> str:
        return render_digest("email", template, digest, templates_dir=config.templates_dir)

    subject = truncate(" ".join(part("digest_subject.txt.j2").split()), SUBJECT_LIMIT)
    email = _envelope(subject, recipient, config)
    email["X-Alerts-State"] = "DIGEST"
    email["X-Alerts-Digest"] = digest.digest_id
    email.set_content(truncate(part("digest_body.txt.j2"), BODY_LIMIT) + "\n")
    email.add_alternative(truncate(part("digest_body.html.j2"), BODY_LIMIT), subtype="html")
    return email


def _envelope(subject: str, recipient: str, config: EmailConfig) -> EmailMessage:
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    from datamantri_alerts.clock import utcnow

    email = EmailMessage()
    email["Subject"] = subject
    email["From"] = config.from_header
    email["To"] = recipient
    email["Date"] = format_datetime(utcnow())
    domain = config.envelope_sender.rpartition("@")[2] or None
    email["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: tells auto-responders (out-of-office) not to answer.
    email["Auto-Submitted"] = "auto-generated"
    return email


def email_parts(message: Message, config: EmailConfig) -> tuple[str, str, str]:
    """(subject, text body, HTML body) as sent: rendered from the templates and cut to the
    limits."""
    from datamantri_alerts.channels.render import render, truncate

    subject = render("email", "subject.txt.j2", message, templates_dir=config.templates_dir)
    text = render("email", "body.txt.j2", message, templates_dir=config.templates_dir)
    html = render("email", "body.html.j2", message, templates_dir=config.templates_dir)
    return (
        truncate(" ".join(subject.split()), SUBJECT_LIMIT),
        truncate(text, BODY_LIMIT),
        truncate(html, BODY_LIMIT),
    )


def _transmit(email: EmailMessage, recipient: str, config: EmailConfig) -> None:
    import smtplib
    import ssl

    security = config.effective_security
    if config.username and security == "none" and not is_loopback_host(config.host):
        raise DeliveryError(
            "refusing to send the SMTP password without TLS to a non-loopback host "
            "(set SMTP_SECURITY=starttls or ssl)",
            retryable=False,
            status="tls",
        )
    context = ssl.create_default_context(cafile=config.ca_bundle)
    if security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            config.host, config.effective_port, timeout=config.timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(config.host, config.effective_port, timeout=config.timeout)
    try:
        smtp.ehlo()
        if security == "starttls":
            if not smtp.has_extn("starttls"):
                raise DeliveryError(
                    f"{config.host} does not offer STARTTLS "
                    "(set SMTP_SECURITY=ssl for port 465, or none for a trusted local relay)",
                    retryable=False,
                    status="tls",
                )
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.username:
            password = config.password.get_secret_value() if config.password else ""
            smtp.login(config.username, password)
        smtp.send_message(email, from_addr=config.envelope_sender, to_addrs=[recipient])
    finally:
        # The message is accepted once DATA is answered; a failed QUIT must not turn that
        # into a failure (and a duplicate on retry).
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def classify_smtp_error(exc: BaseException, secrets: list[str]) -> DeliveryError:
    """A DeliveryError for an smtplib / socket / TLS exception."""
    import smtplib
    import ssl

    from datamantri_alerts.channels.http import redact

    def reply(code: int, text: bytes | str) -> str:
        message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        return f"{code} {message}".strip()

    def by_code(code: int, reason: str) -> DeliveryError:
        return DeliveryError(redact(reason, secrets), retryable=400 <= code < 500, status=code)

    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        address, (code, text) = next(iter(exc.recipients.items()))
        return by_code(code, f"recipient {address} refused: {reply(code, text)}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(
            redact(f"authentication failed: {reply(exc.smtp_code, exc.smtp_error)}", secrets),
            retryable=False,
            status=exc.smtp_code,
        )
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return by_code(exc.smtp_code, f"sender refused: {reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPDataError):
        return by_code(exc.smtp_code, f"message refused: {reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return by_code(exc.smtp_code, f"server said {reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a read timeout as a disconnect ("... closed: timed out").
        status = "timeout" if "timed out" in str(exc) else "disconnected"
        return DeliveryError(
            redact(f"server disconnected: {exc}", secrets), retryable=True, status=status
        )
    if isinstance(exc, smtplib.SMTPException):
        return DeliveryError(redact(f"SMTP error: {exc}", secrets), retryable=False, status="smtp")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(
            redact(
                f"TLS certificate verification failed: {exc.verify_message or exc} "
                "(set SMTP_CA_BUNDLE for a private CA)",
                secrets,
            ),
            retryable=False,
            status="tls",
        )
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(
            redact(f"TLS error: {exc} (check SMTP_SECURITY and SMTP_PORT)", secrets),
            retryable=False,
            status="tls",
        )
    if isinstance(exc, TimeoutError):
        return DeliveryError(
            "timed out talking to the SMTP server", retryable=True, status="timeout"
        )
    if isinstance(exc, OSError):
        return DeliveryError(
            redact(f"could not reach the SMTP server: {exc}", secrets),
            retryable=True,
            status="connection",
        )
    return DeliveryError(
        redact(f"unexpected error: {type(exc).__name__}: {exc}", secrets), retryable=False
    )


CHANNEL = EmailChannel()
