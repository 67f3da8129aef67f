"""Secrets: `${ENV_VAR}` references, masking for display, and the one redactor of output.

Values are stored as written; `${VAR}` is resolved only when a value is used. Anything shown to a
person (tables, JSON, exports) goes through the masking helpers here, and every line that leaves
the process (stdout, stderr, logs, tracebacks, history, outbox, notifications) through
`redact_known` or `redact_text`. Both know the secrets of the environment and a process-wide
registry: every configured URL read from or written to the store is registered (webhook and
HTTP data source URLs with their path and query, database passwords, resolved `${VAR}` values),
as is the store's own URL.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from datamantri_alerts.errors import RuntimeFailure

#: What `export` writes in place of a literal secret; `sync` reads it as "keep the stored value".
REDACTED = "<redacted>"
MASK = "***"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_ENV_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
# A URL scheme is bounded (32 characters): an unbounded `[...]*://` retries from every letter
# of a long word, so a 1 MB query value took minutes to redact. A longer scheme still matches
# from its last 32 characters, so the URL is masked all the same.
_SCHEME = r"[a-zA-Z][a-zA-Z0-9+.\-]{0,31}://"
_URL_IN_TEXT = re.compile(_SCHEME + r"[^\s'\"<>]+")


def is_env_ref(value: object) -> bool:
    """True when the whole value is one `${VAR}` reference."""
    return isinstance(value, str) and bool(_WHOLE_ENV_REF.match(value.strip()))


def has_env_ref(value: object) -> bool:
    return isinstance(value, str) and bool(_ENV_REF.search(value))


def resolve_env(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace every `${VAR}` in value; an unset variable is a runtime failure naming it."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise RuntimeFailure(f"environment variable {name} is not set")
        return env[name]

    return _ENV_REF.sub(substitute, value)


def mask_url(url: str) -> str:
    """A URL safe to show: `${VAR}` kept, password and path-borne tokens masked.

    Database URLs keep scheme, user, host, port and database name; only the password goes.
    Webhook URLs (http/https) keep scheme and host; the path and query carry the token and go.
    """
    if not url or is_env_ref(url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme:
        return mask_secret(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        if ":" in userinfo and not has_env_ref(userinfo.split(":", 1)[1]):
            netloc = f"{user}:{MASK}@{hostport}"
        elif ":" in userinfo:
            netloc = f"{user}:{userinfo.split(':', 1)[1]}@{hostport}"
    if parts.scheme in ("http", "https"):
        path = "/" + MASK if parts.path not in ("", "/") or parts.query else parts.path
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    # urlunsplit drops an empty authority (`sqlite:////tmp/a.db` -> `sqlite://tmp/a.db`, which
    # names host `tmp`), so a URL that had `//` is rebuilt with it.
    if url[len(parts.scheme) + 1 :].startswith("//"):
        query = f"?{parts.query}" if parts.query else ""
        return f"{parts.scheme}://{netloc}{parts.path}{query}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def mask_secret(value: str) -> str:
    """A literal secret is shown as `***`; a `${VAR}` reference is shown as written."""
    if not value or is_env_ref(value):
        return value
    return MASK


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Error, log or traceback text with every secret removed and every URL masked.

    Applies, in order: the known secrets (`secrets`, the registry, the environment's) replaced
    by `***`; the structural rules of `redact_known`; then every URL in the text through
    `mask_url` (http(s) keep scheme and host only; other schemes lose the password).
    """
    out = redact_known(text, secrets)
    return _URL_IN_TEXT.sub(_mask_url_in_text, out)


def describe_exception(exc: BaseException, limit: int = 500) -> str:
    """`Type: message` of an exception, redacted (`redact_text`), its first line, at most
    `limit` characters: the one line a log or a result says of an error."""
    return redact_text(f"{type(exc).__name__}: {exc}").splitlines()[0][:limit]


def _mask_url_in_text(match: re.Match[str]) -> str:
    # Punctuation closing the sentence or parenthesis around a URL is not part of it.
    url = match.group(0)
    core = url.rstrip(").,;:]\\")
    return mask_url(core) + url[len(core) :]


def redact_known(text: str, secrets: Iterable[str] = ()) -> str:
    """Text with the known secrets and the values driver errors quote removed; URLs kept.

    For text that is also content (stdout, history, notification payloads): a runbook link in
    an alert description survives, a registered webhook token or password does not. Known
    secrets: `secrets`, the registry (`register_secret`, `register_url`) and the environment's
    (`secrets_from_env`), each also in its URL-quoted, JSON- and repr-escaped spelling.
    Structural rules: SQLAlchemy `[parameters: ...]` and quoted literals in `[SQL: ...]`, URL
    userinfo passwords, urllib3's `with url: PATH`, the key values PostgreSQL and MySQL quote
    in constraint errors.
    """
    if not text:
        return text
    return _redact_with(_known_index(tuple(s for s in secrets if s) if secrets else ()), text)


def known_redactor(secrets: Iterable[str] = ()) -> Callable[[str], str]:
    """`redact_known` bound to the secrets known now: for redacting many strings at once (a
    JSON value's every string), the registry and environment are read once, not per string."""
    index = _known_index(tuple(s for s in secrets if s))
    return lambda text: _redact_with(index, text) if text else text


def _redact_with(index: _KnownIndex, text: str) -> str:
    # Each rule runs only when the literal text it needs is there (a substring test in C):
    # most strings (summaries, detail values) match none, and six regex passes per string
    # were most of the store's redaction cost.
    # Nothing known (most strings of most runs) costs no call.
    # `_by_prefix`: what `_SecretIndex.__bool__` reads, without two Python calls per string.
    out = index.mask(text) if index.registry._by_prefix or index.extra._by_prefix else text
    if "[parameters: " in out:
        out = _PARAMETERS.sub(_mask_parameters, out)
    for needed, rule, replacement in _STRUCTURAL_RULES:
        if needed in out:
            out = rule.sub(replacement, out)
    if "[SQL: " in out:
        out = _SQL_BLOCK.sub(_mask_sql_literals, out)
    return out


def redact_value(value: Any, redact: Callable[[str], str] | None = None) -> Any:
    """value (JSON: strings, lists, mappings, scalars) with every string passed through redact
    (default `redact_text`); mappings keep their keys, tuples become lists."""
    rule = redact_text if redact is None else redact
    if isinstance(value, str):
        return rule(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item, rule) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item, rule) for item in value]
    return value


# --------------------------------------------------------------------------- known secrets

#: Shorter values are not treated as secrets: masking them would mangle ordinary words.
MIN_SECRET_LENGTH = 4

_registry: set[str] = set()
_registry_version = 0
#: Index of the (environment's and callers') extra secrets, by their values; bounded.
_index_cache: dict[tuple[str, ...], _SecretIndex] = {}
_registry_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember value as a secret of this process: redaction masks it from now on."""
    global _registry_version
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    spellings = _spellings(value)
    with _registry_lock:
        if spellings <= _registry:
            return
        _registry.update(spellings)
        _registry_version += 1
        # Added to the registry's index in place: rebuilding it per registration made
        # delivering to N distinct webhooks cost O(N²) (each send registers its URL).
        _registry_index.add(spellings)


def register_url(value: str | None, environ: Mapping[str, str] | None = None) -> None:
    """Remember the secret parts of a configured URL (see `url_secrets`).

    `${VAR}` references are resolved from environ (default: the process environment); an unset
    variable is skipped, not an error. A value that is not a URL registers nothing, so e-mail
    addresses and phone numbers stay readable.
    """
    if not value or not isinstance(value, str):
        return
    resolved = value
    if has_env_ref(value):
        env = os.environ if environ is None else environ
        resolved = _ENV_REF.sub(lambda m: env.get(m.group(1), ""), value).strip()
    if "://" not in resolved:
        return
    for part in url_secrets(resolved):
        register_secret(part)


def register_configured(value: Any) -> None:
    """Register every URL in a configured value (a string, or JSON of lists and mappings)."""
    if isinstance(value, str):
        register_url(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            register_configured(item)
    elif isinstance(value, list | tuple):
        for item in value:
            register_configured(item)


def forget_secrets() -> None:
    """Empty the registry (a new command invocation in the same process, or a test)."""
    global _registry_version
    global _registry_index
    with _registry_lock:
        _registry.clear()
        _registry_version += 1
        _registry_index = _SecretIndex(set())


def known_secrets() -> frozenset[str]:
    """Every spelling of every secret registered so far in this process."""
    with _registry_lock:
        return frozenset(_registry)


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that carry its secret.

    http(s) (webhooks, HTTP data sources): the whole URL, path, query, path plus query, userinfo
    password, token-like path segments and query values. Other schemes (database URLs): the
    password, as written and percent-decoded. A list of non-empty strings.
    """
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:
        return [url]
    found: list[str] = []
    if password:
        found.extend((password, unquote(password)))
    if parts.scheme.lower() not in ("http", "https"):
        return [item for item in found if item]
    if parts.path in ("", "/") and not parts.query and not password:
        return []  # scheme and host only: nothing secret in it
    found.extend((url, parts.path, parts.query))
    if parts.query:
        found.append(f"{parts.path}?{parts.query}")
    for segment in parts.path.split("/"):
        if len(segment) >= 20 or (len(segment) >= 8 and any(ch.isdigit() for ch in segment)):
            found.append(segment)
    found.extend(value for _key, value in parse_qsl(parts.query) if len(value) >= 8)
    return [item for item in found if item and item != "/"]


def _spellings(value: str) -> set[str]:
    """value as it can appear in output: raw, URL-quoted, JSON-escaped, repr-escaped."""
    found = {
        value,
        quote(value, safe=""),
        quote(value, safe="/:?=&"),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


class _SecretIndex:
    """Known secrets by their first MIN_SECRET_LENGTH characters, then by length: masking costs
    one dict lookup per character of text, plus one set lookup per distinct secret length
    under a matching prefix, however many secrets are known (thousands of webhooks sharing
    `https://hooks...` are a handful of lengths, not thousands of comparisons)."""

    def __init__(self, values: Iterable[str]) -> None:
        #: prefix -> (lengths, longest first; length -> the secrets of that length)
        self._by_prefix: dict[str, tuple[tuple[int, ...], dict[int, set[str]]]] = {}
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Add secrets (callers serialise writers; readers may run meanwhile: each prefix's
        entry is replaced whole, its length sets only grow)."""
        for value in values:
            if len(value) < MIN_SECRET_LENGTH:
                continue
            prefix = value[:MIN_SECRET_LENGTH]
            entry = self._by_prefix.get(prefix)
            sets = dict(entry[1]) if entry is not None else {}
            sets.setdefault(len(value), set()).add(value)
            self._by_prefix[prefix] = (tuple(sorted(sets, reverse=True)), sets)

    def __bool__(self) -> bool:
        return bool(self._by_prefix)

    def longest_at(self, text: str, i: int) -> int:
        """Length of the longest secret starting at text[i] (0: none)."""
        entry = self._by_prefix.get(text[i : i + MIN_SECRET_LENGTH])
        if entry is None:
            return 0
        lengths, sets = entry
        for length in lengths:
            if text[i : i + length] in sets[length]:
                return length
        return 0

    def mask(self, text: str, other: _SecretIndex | None = None) -> str:
        """text with every known secret (of this index and `other`) replaced by `***`, the
        longest match first at each position."""
        indexes = [index for index in (self, other) if index]
        if not indexes or len(text) < MIN_SECRET_LENGTH:
            return text
        pieces: list[str] = []
        copied = 0
        i = 0
        last = len(text) - MIN_SECRET_LENGTH
        while i <= last:
            hit = max(index.longest_at(text, i) for index in indexes)
            if hit:
                pieces.append(text[copied:i])
                pieces.append(MASK)
                i += hit
                copied = i
                continue
            i += 1
        if not pieces:
            return text
        pieces.append(text[copied:])
        return "".join(pieces)


_registry_index = _SecretIndex(set())


class _KnownIndex:
    """The registry's index and the index of the other known secrets (environment, caller),
    masked together (`redact_known`)."""

    __slots__ = ("extra", "registry")

    def __init__(self, registry: _SecretIndex, extra: _SecretIndex) -> None:
        self.registry = registry
        self.extra = extra

    def mask(self, text: str) -> str:
        return self.registry.mask(text, self.extra)


#: The environment's secrets as read by the innermost `environment_read_once` of this thread,
#: with their index and the known index they make with the registry's index of that moment
#: (None: outside one, the environment is read at each redaction).
_environment_read: ContextVar[tuple[tuple[str, ...], _SecretIndex, _KnownIndex] | None] = (
    ContextVar("environment_read", default=None)
)


@contextmanager
def environment_read_once() -> Iterator[None]:
    """Within it, redaction in this thread (and context) takes the environment's secrets as
    read on entering, not again at every value (a batch of writes: thousands of values). The
    registry is still read at each value: a secret registered meanwhile is masked at once."""
    environment = tuple(secrets_from_env())
    index = _extra_index(environment)
    token = _environment_read.set((environment, index, _KnownIndex(_registry_index, index)))
    try:
        yield
    finally:
        _environment_read.reset(token)


def _known_index(extra: tuple[str, ...]) -> _KnownIndex:
    """The registry's index (kept up to date as secrets are registered) with the index of
    `extra` and the environment's secrets (cached per their values)."""
    environment = _environment_read.get()
    if environment is not None and not extra:
        # Inside `environment_read_once` (a batch's every value): its index, no lookup, and
        # the one made on entering while the registry's index is still that one (it grows in
        # place; `forget_secrets` replaces it).
        known = environment[2]
        if known.registry is _registry_index:
            return known
        return _KnownIndex(_registry_index, environment[1])
    key = extra + (tuple(secrets_from_env()) if environment is None else environment[0])
    with _registry_lock:  # delivery threads register while others print
        registry = _registry_index
    return _KnownIndex(registry, _extra_index(key))


def _extra_index(key: tuple[str, ...]) -> _SecretIndex:
    """The index of the secrets `key` (caller's, environment's) in every spelling, cached."""
    with _registry_lock:
        cached = _index_cache.get(key)
    if cached is None:
        values: set[str] = set()
        for item in key:
            parts = url_secrets(item) if "://" in item else [item]
            for part in parts:
                values.update(_spellings(part))
        cached = _SecretIndex(values)
        with _registry_lock:
            if len(_index_cache) > 64:
                _index_cache.clear()
            _index_cache[key] = cached
    return cached


# --------------------------------------------------------------------------- structural rules

#: (a literal every match contains, the rule, its replacement)
_STRUCTURAL_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # A password in any URL's userinfo, up to the last `@` before the host (an unquoted `@`
    # in the password belongs to it); `${VAR}` references and masks kept.
    (
        "://",
        re.compile(f"({_SCHEME}" + r"[^\s:/@'\"<>]*:)(?!\$\{|\*\*\*@)[^\s/?#'\"<>]+@"),
        r"\1***@",
    ),
    # urllib3/requests: "Max retries exceeded with url: /path?query (Caused by ...)".
    ("with url: ", re.compile(r"(with url: )[^\s\"'\\]+"), r"\1/***"),
    # PostgreSQL: DETAIL: Key (col)=(value) already exists / is not present.
    (
        "Key (",
        re.compile(r"(Key \([^)\n]*\)=\()[^\n]*?(\) (?:already exists|is not present))"),
        r"\1***\2",
    ),
    # MySQL/MariaDB: Duplicate entry 'value' for key 'name'.
    ("Duplicate entry ", re.compile(r"(Duplicate entry )'(?:[^'\\]|\\.|'')*'"), r"\1'***'"),
)

#: Every literal a rule of `_redact_with` needs in a string: printable ASCII, no quote, no
#: backslash, so JSON text (`json.dumps`) holds one exactly when a string of its value (or a key)
#: does.
_RULE_LITERALS = ("[parameters: ", "[SQL: ", *(needed for needed, _, _ in _STRUCTURAL_RULES))


def redaction_possible(text: str) -> bool:
    """False when `redact_known` provably leaves every string in `text` as it is: no secret is
    known now (registry, environment) and `text` holds none of the literals a structural rule
    needs. `text` may be a JSON value's `json.dumps` text: then every string of the value."""
    index = _known_index(())
    if index.registry._by_prefix or index.extra._by_prefix:  # `_SecretIndex.__bool__`
        return True
    # A loop, not `any` over a generator: this runs for every JSON value written.
    for literal in _RULE_LITERALS:  # noqa: SIM110
        if literal in text:
            return True
    return False


# SQLAlchemy's statement parameters: one line, however long, closed by the line's last `]`.
_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
# The end of a JSON string value on an indented JSON line (`",` or `"`), kept when cutting.
_JSON_STRING_END = re.compile(r'(?<!\\)"\s*,?\s*$')


def _mask_parameters(match: re.Match[str]) -> str:
    """`[parameters: ***]`, keeping what follows the closing bracket on the line (the rest of a
    JSON string, its closing quote and comma), so `--json` output stays valid JSON."""
    rest = match.group(0)
    close = rest.rfind("]")
    if close >= 0:
        return "[parameters: ***]" + rest[close + 1 :]
    tail = _JSON_STRING_END.search(rest)
    return "[parameters: ***" + (rest[tail.start() :] if tail else "")


# SQLAlchemy's `[SQL: ...]` block, up to the parameters or the background link that follow it.
_SQL_BLOCK = re.compile(
    r"\[SQL: .*?(?=\]\s*(?:\n\s*\[parameters|\n\s*\[SQL parameters|\n\s*\(Background|$))",
    re.DOTALL,
)
_SQL_LITERAL = re.compile(r"'(?:[^']|'')*'")


def _mask_sql_literals(match: re.Match[str]) -> str:
    return _SQL_LITERAL.sub("'***'", match.group(0))


#: Environment variables whose whole value is a secret (`secrets_from_env`; the database
#: URL's password is taken from `ALERTS_DATABASE_URL` besides).
SECRET_ENV_NAMES = (
    "SMTP_PASSWORD",
    "TWILIO_AUTH_TOKEN",
    "SLACK_WEBHOOK_URL",
    "TEAMS_WEBHOOK_URL",
    "ALERTS_SECRET_KEY",
    "ALERTS_HEARTBEAT_URL",
)


def secrets_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """The secret values configured in the environment, for redaction."""
    env = os.environ if environ is None else environ
    found = [env[n] for n in SECRET_ENV_NAMES if env.get(n)]
    keys = env.get("ALERTS_SECRET_KEY", "")
    if "," in keys:
        found.extend(k.strip() for k in keys.split(",") if k.strip())
    database = env.get("ALERTS_DATABASE_URL", "")
    if database:
        found.extend(url_secrets(database))
    return found
