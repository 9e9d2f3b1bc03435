"""Outbound authentication: the ``[auth]`` table and one class per ``kind``.

Static strategies (``api_key``, ``bearer``, ``basic``) add the same credential
to every request. Token strategies (``oauth2_client_credentials``,
``oauth2_refresh_token``, ``jwt``, ``service_account``) keep a token in a
:class:`TokenCache`: it is renewed before it expires (a margin of a tenth of
its lifetime, at most 5 minutes), one renewal at a time however many threads
wait for it, and dropped once when the server answers 401 with it.

JWTs are signed with PyJWT (RS256 through ``cryptography``).
"""

import base64
import threading
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

import httpx
import jwt

from .clock import Clock
from .config import Secret, Table
from .errors import HttpError

#: The longest a token is renewed before it expires.
MAX_REFRESH_MARGIN = 300.0
#: Token endpoints are POSTed this form and answer ``httpx.Response``.
PostForm = Callable[[str, Dict[str, str]], httpx.Response]

KINDS = (
    "api_key",
    "bearer",
    "basic",
    "oauth2_client_credentials",
    "oauth2_refresh_token",
    "jwt",
    "service_account",
)


class Credentials:
    """What one request carries: extra headers and query parameters, and the token they came from."""

    __slots__ = ("headers", "params", "token")

    def __init__(self, headers: Dict[str, str], params: Dict[str, str], token: Optional[object] = None):
        self.headers = headers
        self.params = params
        self.token = token

    def __repr__(self) -> str:
        return f"Credentials(headers={sorted(self.headers)}, params={sorted(self.params)})"


class Auth:
    """An authentication strategy; subclasses are chosen by ``[auth] kind``."""

    #: The ``kind`` this class implements.
    kind = "none"
    #: Whether a 401 may be fixed by getting a new token.
    refreshable = False

    def credentials(self, post_form: PostForm) -> Credentials:
        """The credentials for the next request (may call the token endpoint through ``post_form``)."""
        return Credentials({}, {})

    def invalidate(self, token: Optional[object]) -> None:
        """Forgets ``token`` after the server refused it (a no-op for static credentials)."""

    def describe(self) -> str:
        """Which credential this is, for error messages (names of variables, never values)."""
        return "no authentication"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


class NoAuth(Auth):
    """No ``[auth]`` table: requests go out without credentials."""


class ApiKeyAuth(Auth):
    """``kind = "api_key"``: the key in a header (``header``) or a query parameter (``query``)."""

    kind = "api_key"

    def __init__(self, key: Secret, header: Optional[str], query: Optional[str]):
        self.key = key
        self.header = header
        self.query = query

    def credentials(self, post_form: PostForm) -> Credentials:
        if self.header:
            return Credentials({self.header: self.key.reveal()}, {})
        return Credentials({}, {self.query or "": self.key.reveal()})

    def describe(self) -> str:
        where = f"header {self.header}" if self.header else f"query parameter {self.query}"
        return f"api_key in {where} from {self.key.source}"


class BearerAuth(Auth):
    """``kind = "bearer"``: ``Authorization: Bearer <token>``."""

    kind = "bearer"

    def __init__(self, token: Secret):
        self.token = token

    def credentials(self, post_form: PostForm) -> Credentials:
        return Credentials({"Authorization": f"Bearer {self.token.reveal()}"}, {})

    def describe(self) -> str:
        return f"bearer token from {self.token.source}"


class BasicAuth(Auth):
    """``kind = "basic"``: ``Authorization: Basic base64(user:password)``."""

    kind = "basic"

    def __init__(self, username: str, password: Secret):
        self.username = username
        self.password = password

    def credentials(self, post_form: PostForm) -> Credentials:
        raw = f"{self.username}:{self.password.reveal()}".encode("utf-8")
        return Credentials({"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}, {})

    def describe(self) -> str:
        return f"basic auth for user {self.username!r} with the password from {self.password.source}"


class Token:
    """An access token and when to renew it (monotonic seconds; ``None``: until refused)."""

    __slots__ = ("value", "renew_at")

    def __init__(self, value: str, renew_at: Optional[float]):
        self.value = value
        self.renew_at = renew_at

    def __repr__(self) -> str:
        return "Token(<redacted>)"


class TokenCache:
    """One token shared by every call; renewed by one caller while the others wait for it."""

    def __init__(self, clock: Clock, obtain: Callable[[PostForm], Tuple[str, Optional[float]]]):
        self.clock = clock
        self.obtain = obtain
        self.token: Optional[Token] = None
        self.lock = threading.Lock()
        #: How many tokens were obtained (tests check single flight with it).
        self.renewals = 0

    def _fresh(self) -> Optional[Token]:
        token = self.token
        if token is not None and (token.renew_at is None or self.clock.monotonic() < token.renew_at):
            return token
        return None

    def get(self, post_form: PostForm) -> Token:
        """The current token, renewed first when it is missing or due."""
        token = self._fresh()
        if token is not None:
            return token
        with self.lock:
            token = self._fresh()  # another thread may have renewed it while this one waited
            if token is not None:
                return token
            value, lifetime = self.obtain(post_form)
            renew_at = None
            if lifetime is not None:
                renew_at = self.clock.monotonic() + lifetime - min(MAX_REFRESH_MARGIN, lifetime / 10.0)
            self.token = Token(value, renew_at)
            self.renewals += 1
            return self.token

    def invalidate(self, token: Optional[object]) -> None:
        """Drops ``token`` if it is still the current one (N refused calls cause one renewal)."""
        with self.lock:
            if token is not None and self.token is token:
                self.token = None


class TokenAuth(Auth):
    """A strategy whose bearer token comes from a :class:`TokenCache`."""

    refreshable = True

    def __init__(self, clock: Clock):
        self.cache = TokenCache(clock, self.obtain)

    def obtain(self, post_form: PostForm) -> Tuple[str, Optional[float]]:
        """A new token and its lifetime in seconds (``None`` when unknown)."""
        raise NotImplementedError

    def credentials(self, post_form: PostForm) -> Credentials:
        token = self.cache.get(post_form)
        return Credentials({"Authorization": f"Bearer {token.value}"}, {}, token)

    def invalidate(self, token: Optional[object]) -> None:
        self.cache.invalidate(token)


def _token_response(response: httpx.Response, token_url: str, what: str) -> Dict[str, Any]:
    """The JSON of a token endpoint's answer, or an :class:`HttpError` saying what went wrong."""
    status = response.status_code
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        detail = f": {body['error']}"
        if isinstance(body.get("error_description"), str):
            detail += f" ({body['error_description']})"
    if status >= 400:
        retryable = status in (429, 502, 503, 504) or status >= 500
        raise HttpError(
            f"the token endpoint {token_url} refused {what} with HTTP {status}{detail}",
            retryable=retryable,
            code="token_error",
            status=status,
        )
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise HttpError(
            f"the token endpoint {token_url} answered HTTP {status} without an access_token in a JSON object",
            retryable=False,
            code="token_error",
            status=status,
        )
    return body


def _lifetime(body: Dict[str, Any]) -> Optional[float]:
    expires_in = body.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    return None


class ClientCredentialsAuth(TokenAuth):
    """``kind = "oauth2_client_credentials"``: RFC 6749 §4.4, client id and secret in the form body."""

    kind = "oauth2_client_credentials"

    def __init__(
        self, clock: Clock, token_url: str, client_id: str, secret: Secret, scopes: List[str], audience: Optional[str]
    ):
        super().__init__(clock)
        self.token_url = token_url
        self.client_id = client_id
        self.secret = secret
        self.scopes = scopes
        self.audience = audience

    def obtain(self, post_form: PostForm) -> Tuple[str, Optional[float]]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.secret.reveal()}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        if self.audience:
            form["audience"] = self.audience
        body = _token_response(post_form(self.token_url, form), self.token_url, "the client credentials")
        return body["access_token"], _lifetime(body)

    def describe(self) -> str:
        return f"OAuth2 client {self.client_id!r} with the secret from {self.secret.source} at {self.token_url}"


class RefreshTokenAuth(TokenAuth):
    """``kind = "oauth2_refresh_token"``: RFC 6749 §6; a rotated refresh token is kept (in memory)."""

    kind = "oauth2_refresh_token"

    def __init__(
        self,
        clock: Clock,
        token_url: str,
        client_id: str,
        secret: Optional[Secret],
        refresh_token: Secret,
        scopes: List[str],
    ):
        super().__init__(clock)
        self.token_url = token_url
        self.client_id = client_id
        self.secret = secret
        self.refresh_token = refresh_token
        self.scopes = scopes

    def obtain(self, post_form: PostForm) -> Tuple[str, Optional[float]]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token.reveal(),
            "client_id": self.client_id,
        }
        if self.secret is not None:
            form["client_secret"] = self.secret.reveal()
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        body = _token_response(post_form(self.token_url, form), self.token_url, "the refresh token")
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self.refresh_token.reveal():
            # The provider rotates refresh tokens: the old one may no longer work, so use the new one from now on.
            self.refresh_token = Secret(rotated, f"a rotation of {self.refresh_token.source}")
        return body["access_token"], _lifetime(body)

    def describe(self) -> str:
        return (
            f"OAuth2 refresh token from {self.refresh_token.source} for client {self.client_id!r} at {self.token_url}"
        )


class SigningKey:
    """A JWT signing key: an HS256 secret or an RS256 private key (PEM)."""

    def __init__(self, algorithm: str, key: Secret, key_id: Optional[str]):
        self.algorithm = algorithm
        self.key = key
        self.key_id = key_id

    def sign(self, claims: Dict[str, Any]) -> str:
        """The compact JWT for ``claims``."""
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self.key.reveal(), algorithm=self.algorithm, headers=headers)

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm} from {self.key.source})"


class JwtAuth(TokenAuth):
    """``kind = "jwt"``: a self-signed JWT as the bearer token, renewed before it expires."""

    kind = "jwt"

    def __init__(self, clock: Clock, key: SigningKey, claims: Dict[str, str], lifetime: float):
        super().__init__(clock)
        self.key = key
        self.claims = claims
        self.lifetime = lifetime
        self.clock = clock

    def obtain(self, post_form: PostForm) -> Tuple[str, Optional[float]]:
        now = int(self.clock.time())
        claims = dict(self.claims, iat=now, exp=now + int(self.lifetime), jti=uuid.uuid4().hex)
        return self.key.sign(claims), self.lifetime

    def describe(self) -> str:
        return f"self-signed JWT ({self.key!r}) for issuer {self.claims.get('iss')!r}"


class ServiceAccountAuth(TokenAuth):
    """``kind = "service_account"``: an RS256 assertion exchanged for a token (RFC 7523 JWT bearer grant)."""

    kind = "service_account"
    GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def __init__(self, clock: Clock, token_url: str, key: SigningKey, claims: Dict[str, str], lifetime: float):
        super().__init__(clock)
        self.token_url = token_url
        self.key = key
        self.claims = claims
        self.lifetime = lifetime
        self.clock = clock

    def obtain(self, post_form: PostForm) -> Tuple[str, Optional[float]]:
        now = int(self.clock.time())
        assertion = self.key.sign(dict(self.claims, iat=now, exp=now + int(self.lifetime)))
        form = {"grant_type": self.GRANT_TYPE, "assertion": assertion}
        body = _token_response(post_form(self.token_url, form), self.token_url, "the service account assertion")
        return body["access_token"], _lifetime(body)

    def describe(self) -> str:
        return f"service account {self.claims.get('iss')!r} ({self.key!r}) at {self.token_url}"


def _private_key(table: Table) -> Optional[Secret]:
    """An RS256 private key (PEM) from ``private_key_env`` or ``private_key_file``, checked to load."""
    has_env, has_file = table.has("private_key_env"), table.has("private_key_file")
    if has_env == has_file:
        table.error(
            "private_key_env", f"set exactly one of {table.key('private_key_env')} and {table.key('private_key_file')}"
        )
        return None
    if has_env:
        secret = table.secret("private_key_env")
    else:
        path = table.string("private_key_file", required=True)
        if path is None:
            return None
        try:
            with open(path, "r", encoding="utf-8") as handle:
                secret = Secret(handle.read(), f"file {path}")
        except (OSError, UnicodeDecodeError) as err:
            table.error("private_key_file", f"cannot read {path}: {type(err).__name__}")
            return None
    if secret is None:
        return None
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(secret.reveal().encode("utf-8"), password=None)
    except (ValueError, TypeError):
        which = "private_key_env" if has_env else "private_key_file"
        table.error(which, f"{secret.source} does not hold an unencrypted PEM private key")
        return None
    if not isinstance(key, RSAPrivateKey):
        table.error("private_key_env" if has_env else "private_key_file", f"{secret.source} is not an RSA key (RS256)")
        return None
    return secret


def read_auth(table: Optional[Table], clock: Clock) -> Auth:
    """The strategy the ``[auth]`` table describes (problems are recorded in the table's errors)."""
    if table is None:
        return NoAuth()
    kind = table.choice("kind", KINDS)
    auth: Optional[Auth] = None
    if kind == "api_key":
        header, query = table.string("header"), table.string("query")
        if (header is None) == (query is None):
            table.error("header", f"set exactly one of {table.key('header')} and {table.key('query')}")
        key = table.secret("key_env")
        if key is not None and (header is None) != (query is None):
            auth = ApiKeyAuth(key, header, query)
    elif kind == "bearer":
        token = table.secret("token_env")
        auth = BearerAuth(token) if token is not None else None
    elif kind == "basic":
        username = table.plain_or_env("username")
        password = table.secret("password_env")
        auth = BasicAuth(username, password) if username is not None and password is not None else None
    elif kind == "oauth2_client_credentials":
        token_url = table.string("token_url", required=True)
        client_id = table.plain_or_env("client_id")
        secret = table.secret("client_secret_env")
        scopes = table.strings("scopes")
        audience = table.string("audience")
        if token_url and client_id and secret:
            auth = ClientCredentialsAuth(clock, token_url, client_id, secret, scopes, audience)
    elif kind == "oauth2_refresh_token":
        token_url = table.string("token_url", required=True)
        client_id = table.plain_or_env("client_id")
        secret = table.secret("client_secret_env", required=False) if table.has("client_secret_env") else None
        refresh = table.secret("refresh_token_env")
        scopes = table.strings("scopes")
        if token_url and client_id and refresh:
            auth = RefreshTokenAuth(clock, token_url, client_id, secret, refresh, scopes)
    elif kind == "jwt":
        algorithm = table.choice("algorithm", ("HS256", "RS256"), default="HS256")
        key_secret = table.secret("secret_env") if algorithm == "HS256" else _private_key(table)
        if algorithm == "HS256":
            table.known.update({"private_key_env", "private_key_file"})
            for name in ("private_key_env", "private_key_file"):
                if name in table.data:
                    table.error(name, 'is for algorithm = "RS256"; HS256 uses secret_env')
        elif "secret_env" in table.data:
            table.known.add("secret_env")
            table.error("secret_env", 'is for algorithm = "HS256"; RS256 uses private_key_env or private_key_file')
        claims = {"iss": table.string("issuer", required=True), "aud": table.string("audience", required=True)}
        subject = table.string("subject")
        if subject:
            claims["sub"] = subject
        lifetime = table.duration("lifetime", 300.0)
        key_id = table.string("key_id")
        if key_secret is not None and algorithm and claims["iss"] and claims["aud"]:
            auth = JwtAuth(clock, SigningKey(algorithm, key_secret, key_id), claims, lifetime)
    elif kind == "service_account":
        token_url = table.string("token_url", required=True)
        key_secret = _private_key(table)
        issuer = table.string("issuer", required=True)
        subject = table.string("subject")
        audience = table.string("audience") or token_url
        scopes = table.strings("scopes")
        lifetime = table.duration("lifetime", 3600.0)
        key_id = table.string("key_id")
        if token_url and key_secret is not None and issuer:
            claims = {"iss": issuer, "aud": audience or ""}
            if subject:
                claims["sub"] = subject
            if scopes:
                claims["scope"] = " ".join(scopes)
            auth = ServiceAccountAuth(clock, token_url, SigningKey("RS256", key_secret, key_id), claims, lifetime)
    table.reject_unknown()
    return auth if auth is not None else NoAuth()


__all__ = [
    "Auth",
    "ApiKeyAuth",
    "BasicAuth",
    "BearerAuth",
    "ClientCredentialsAuth",
    "Credentials",
    "JwtAuth",
    "KINDS",
    "NoAuth",
    "RefreshTokenAuth",
    "ServiceAccountAuth",
    "TokenCache",
    "read_auth",
]
