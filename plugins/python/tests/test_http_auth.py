"""Every ``[auth]`` kind against a local server that checks the exact credentials it receives."""

import base64
import threading

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fake_api import FakeApi, FakeClock
from switchyard_plugin.http import HttpClient, HttpConfigError, HttpError

SECRET = "s3cr3t-value-never-shown-0123456789abcdef"


@pytest.fixture
def api():
    with FakeApi() as server:
        yield server


@pytest.fixture(scope="module")
def rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def client(api, auth, environ, clock=None, **extra):
    table = dict({"base_url": api.url + "/v1", "auth": auth}, **extra)
    return HttpClient.from_config(table, field="api", environ=environ, clock=clock or FakeClock())


def guarded(check):
    """A route answering 200 when ``check(request)`` holds, else 401."""
    return lambda request: (200, {}, {"ok": True}) if check(request) else (401, {}, {"error": "unauthorized"})


def test_api_key_in_a_header(api):
    api.route("GET", "/v1/me", guarded(lambda r: r.header("x-api-key") == SECRET and "api_key" not in r.query))
    c = client(api, {"kind": "api_key", "header": "x-api-key", "key_env": "MY_KEY"}, {"MY_KEY": SECRET})
    assert c.get_json("/me") == {"ok": True}


def test_api_key_in_the_query(api):
    api.route("GET", "/v1/me", guarded(lambda r: r.query == {"api_key": SECRET, "q": "x"}))
    c = client(api, {"kind": "api_key", "query": "api_key", "key_env": "MY_KEY"}, {"MY_KEY": SECRET})
    assert c.get_json("/me", params={"q": "x"}) == {"ok": True}


def test_bearer(api):
    api.route("GET", "/v1/me", guarded(lambda r: r.header("authorization") == f"Bearer {SECRET}"))
    c = client(api, {"kind": "bearer", "token_env": "TOKEN"}, {"TOKEN": SECRET})
    assert c.get_json("/me") == {"ok": True}


def test_basic_with_username_or_username_env(api):
    expected = "Basic " + base64.b64encode(f"ada:{SECRET}".encode()).decode()
    api.route("GET", "/v1/me", guarded(lambda r: r.header("authorization") == expected))
    c = client(api, {"kind": "basic", "username": "ada", "password_env": "PW"}, {"PW": SECRET})
    assert c.get_json("/me") == {"ok": True}
    c = client(api, {"kind": "basic", "username_env": "USER", "password_env": "PW"}, {"USER": "ada", "PW": SECRET})
    assert c.get_json("/me") == {"ok": True}


def token_endpoint(expected_form, tokens, expires_in=3600, extra=None):
    """A token route that checks the form exactly and hands out ``tokens`` in turn."""
    issued = iter(tokens)

    def handle(request):
        if request.form != expected_form(request) if callable(expected_form) else request.form != expected_form:
            return 400, {}, {"error": "invalid_request", "error_description": f"unexpected form {sorted(request.form)}"}
        return (
            200,
            {},
            dict({"access_token": next(issued), "token_type": "bearer", "expires_in": expires_in}, **(extra or {})),
        )

    return handle


def test_oauth2_client_credentials_caches_the_token_and_renews_it_before_expiry(api):
    form = {
        "grant_type": "client_credentials",
        "client_id": "app",
        "client_secret": SECRET,
        "scope": "read write",
        "audience": "https://api",
    }
    api.route("POST", "/token", token_endpoint(form, ["tok-1", "tok-2"]))
    accepted = {"Bearer tok-1", "Bearer tok-2"}
    api.route("GET", "/v1/me", guarded(lambda r: r.header("authorization") in accepted))
    clock = FakeClock()
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": api.url + "/token",
        "client_id": "app",
        "client_secret_env": "CS",
        "scopes": ["read", "write"],
        "audience": "https://api",
    }
    c = client(api, auth, {"CS": SECRET}, clock)
    for _ in range(3):
        c.get_json("/me")
    assert len(api.seen("/token")) == 1
    clock.advance(3600 - 300 - 1)  # still before the renewal margin (5 minutes)
    c.get_json("/me")
    assert len(api.seen("/token")) == 1
    clock.advance(2)
    c.get_json("/me")
    assert len(api.seen("/token")) == 2
    assert api.seen("/v1/me")[-1].header("authorization") == "Bearer tok-2"


def test_oauth2_refresh_token_uses_a_rotated_refresh_token(api):
    refresh_tokens = []

    def handle(request):
        refresh_tokens.append(request.form.get("refresh_token"))
        expected = {"grant_type", "refresh_token", "client_id", "client_secret", "scope"}
        if (
            set(request.form) != expected
            or request.form["client_id"] != "app"
            or request.form["client_secret"] != SECRET
        ):
            return 400, {}, {"error": "invalid_client"}
        n = len(refresh_tokens)
        return 200, {}, {"access_token": f"tok-{n}", "expires_in": 3600, "refresh_token": f"rt-{n + 1}"}

    api.route("POST", "/token", handle)
    # tok-1 is refused (revoked): the client must get tok-2 with the rotated refresh token.
    api.route("GET", "/v1/me", guarded(lambda r: r.header("authorization") == "Bearer tok-2"))
    auth = {
        "kind": "oauth2_refresh_token",
        "token_url": api.url + "/token",
        "client_id": "app",
        "client_secret_env": "CS",
        "refresh_token_env": "RT",
        "scopes": ["offline"],
    }
    c = client(api, auth, {"CS": SECRET, "RT": "rt-1"})
    assert c.get_json("/me") == {"ok": True}
    assert refresh_tokens == ["rt-1", "rt-2"]
    assert SECRET not in repr(c) and "rt-" not in repr(c.auth)


def test_a_401_is_fixed_by_one_refresh_and_one_retry(api):
    form = {"grant_type": "client_credentials", "client_id": "app", "client_secret": SECRET}
    api.route("POST", "/token", token_endpoint(form, ["stale", "fresh"]))
    api.route("GET", "/v1/me", guarded(lambda r: r.header("authorization") == "Bearer fresh"))
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": api.url + "/token",
        "client_id_env": "CID",
        "client_secret_env": "CS",
    }
    c = client(api, auth, {"CS": SECRET, "CID": "app"})
    assert c.get_json("/me") == {"ok": True}
    assert len(api.seen("/token")) == 2
    assert len(api.seen("/v1/me")) == 2


def test_a_401_that_a_refresh_does_not_fix_is_permanent_and_names_the_credential(api):
    form = {"grant_type": "client_credentials", "client_id": "app", "client_secret": SECRET}
    api.route("POST", "/token", token_endpoint(form, ["a", "b", "c"]))
    api.route("GET", "/v1/me", guarded(lambda r: False))
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": api.url + "/token",
        "client_id": "app",
        "client_secret_env": "CS",
    }
    with pytest.raises(HttpError) as err:
        client(api, auth, {"CS": SECRET}).get("/me")
    assert (err.value.retryable, err.value.code, err.value.status) == (False, "auth_failed", 401)
    assert "env CS" in err.value.message and SECRET not in err.value.message
    assert len(api.seen("/token")) == 2  # one refresh, one retry, no more


def test_a_static_key_refused_with_401_is_permanent_without_retry(api):
    api.route("GET", "/v1/me", guarded(lambda r: False))
    c = client(api, {"kind": "bearer", "token_env": "TOKEN"}, {"TOKEN": SECRET})
    with pytest.raises(HttpError) as err:
        c.get("/me")
    assert err.value.code == "auth_failed" and "env TOKEN" in err.value.message
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)
    assert len(api.seen("/v1/me")) == 1


def test_a_refused_token_request_is_permanent_and_quotes_the_oauth_error(api):
    api.route("POST", "/token", lambda r: (400, {}, {"error": "invalid_client", "error_description": "bad secret"}))
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": api.url + "/token",
        "client_id": "app",
        "client_secret_env": "CS",
    }
    with pytest.raises(HttpError) as err:
        client(api, auth, {"CS": SECRET}).get("/me")
    assert (err.value.retryable, err.value.code) == (False, "token_error")
    assert "invalid_client (bad secret)" in err.value.message and SECRET not in err.value.message


def test_one_token_request_however_many_calls_wait_for_it(api):
    calls = 12
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_token(request):
        release.wait(30)
        return 200, {}, {"access_token": "only", "expires_in": 3600}

    api.route("POST", "/token", slow_token)
    api.route("GET", "/v1/me", guarded(lambda r: r.header("authorization") == "Bearer only"))
    auth = {
        "kind": "oauth2_client_credentials",
        "token_url": api.url + "/token",
        "client_id": "app",
        "client_secret_env": "CS",
    }
    c = client(api, auth, {"CS": SECRET})
    original = c.auth.credentials

    def counting(post_form):
        entered.release()
        return original(post_form)

    c.auth.credentials = counting
    results = []
    threads = [threading.Thread(target=lambda: results.append(c.get_json("/me"))) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for _ in range(calls):
        assert entered.acquire(timeout=30), "every call asks for credentials"
    release.set()
    for thread in threads:
        thread.join(30)
    assert results == [{"ok": True}] * calls
    assert len(api.seen("/token")) == 1
    assert c.auth.cache.renewals == 1


@pytest.mark.parametrize("algorithm", ["HS256", "RS256"])
def test_jwt_is_signed_with_the_configured_claims(api, rsa_pem, algorithm):
    private, public = rsa_pem
    verify_key = SECRET if algorithm == "HS256" else public

    def check(request):
        header = request.header("authorization") or ""
        token = header.removeprefix("Bearer ")
        # leeway: the fake clock runs ahead of the real one the server checks with.
        claims = jwt.decode(token, verify_key, algorithms=[algorithm], audience="svc", issuer="me", leeway=3600)
        assert jwt.get_unverified_header(token)["kid"] == "k1"
        return claims["sub"] == "robot" and claims["exp"] - claims["iat"] == 300

    api.route("GET", "/v1/me", guarded(check))
    auth = {
        "kind": "jwt",
        "algorithm": algorithm,
        "issuer": "me",
        "audience": "svc",
        "subject": "robot",
        "lifetime": "5m",
        "key_id": "k1",
    }
    if algorithm == "HS256":
        auth["secret_env"] = "JWT_SECRET"
    else:
        auth["private_key_env"] = "JWT_KEY"
    clock = FakeClock()
    c = client(api, auth, {"JWT_SECRET": SECRET, "JWT_KEY": private}, clock)
    assert c.get_json("/me") == {"ok": True}
    c.get_json("/me")
    assert c.auth.cache.renewals == 1
    clock.advance(290)  # renewed before its 5 minutes are up
    c.get_json("/me")
    assert c.auth.cache.renewals == 2


def test_service_account_exchanges_a_signed_assertion(api, rsa_pem, tmp_path):
    private, public = rsa_pem
    key_file = tmp_path / "sa.pem"
    key_file.write_text(private)
    token_url = api.url + "/oauth2/token"

    def token(request):
        form = request.form
        assert set(form) == {"grant_type", "assertion"}
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        claims = jwt.decode(form["assertion"], public, algorithms=["RS256"], audience=token_url, issuer="sa@proj")
        assert claims["sub"] == "user@example.com" and claims["scope"] == "a b"
        assert jwt.get_unverified_header(form["assertion"])["kid"] == "key-7"
        return 200, {}, {"access_token": "sa-token", "expires_in": 3600}

    api.route("POST", "/oauth2/token", token)
    api.route("GET", "/v1/me", guarded(lambda r: r.header("authorization") == "Bearer sa-token"))
    auth = {
        "kind": "service_account",
        "token_url": token_url,
        "issuer": "sa@proj",
        "subject": "user@example.com",
        "scopes": ["a", "b"],
        "private_key_file": str(key_file),
        "key_id": "key-7",
    }
    assert client(api, auth, {}).get_json("/me") == {"ok": True}


def test_missing_env_vars_name_the_key_and_variable_but_no_value():
    with pytest.raises(HttpConfigError) as err:
        HttpClient.from_config({"auth": {"kind": "bearer", "token_env": "NOPE"}}, field="api", environ={})
    assert [(e.field, e.message) for e in err.value.errors] == [
        ("api.auth.token_env", "the environment variable NOPE (named by api.auth.token_env) is not set or empty")
    ]


def test_bad_auth_tables_are_reported_per_key(rsa_pem):
    cases = [
        ({"kind": "magic"}, ["api.auth.kind"]),
        ({"kind": "api_key", "key_env": "K"}, ["api.auth.header"]),
        ({"kind": "api_key", "key_env": "K", "header": "h", "query": "q"}, ["api.auth.header"]),
        ({"kind": "bearer", "token_env": "K", "token": "inline"}, ["api.auth.token"]),
        ({"kind": "basic", "password_env": "K"}, ["api.auth.username"]),
        ({"kind": "jwt", "secret_env": "K", "issuer": "i"}, ["api.auth.audience"]),
        (
            {"kind": "jwt", "algorithm": "RS256", "private_key_env": "K", "issuer": "i", "audience": "a"},
            ["api.auth.private_key_env"],
        ),
        ({"kind": "service_account", "token_url": "http://t", "issuer": "i"}, ["api.auth.private_key_env"]),
    ]
    for auth, fields in cases:
        with pytest.raises(HttpConfigError) as err:
            HttpClient.from_config({"auth": auth}, field="api", environ={"K": "not a pem key"})
        assert [e.field for e in err.value.errors] == fields, (auth, err.value.errors)
        assert "not a pem key" not in str(err.value)


def test_no_secret_reaches_a_repr_or_an_error_of_any_kind(api, rsa_pem):
    private, _ = rsa_pem
    environ = {"S": SECRET, "PEM": private}
    token_url = api.url + "/token"
    api.route("POST", "/token", lambda r: (500, {}, {"error": "server_error", "error_description": "down"}))
    api.route("GET", "/v1/me", lambda r: (401, {}, {"error": "no"}))
    kinds = [
        {"kind": "api_key", "header": "x-key", "key_env": "S"},
        {"kind": "api_key", "query": "key", "key_env": "S"},
        {"kind": "bearer", "token_env": "S"},
        {"kind": "basic", "username": "u", "password_env": "S"},
        {"kind": "oauth2_client_credentials", "token_url": token_url, "client_id": "c", "client_secret_env": "S"},
        {"kind": "oauth2_refresh_token", "token_url": token_url, "client_id": "c", "refresh_token_env": "S"},
        {"kind": "jwt", "secret_env": "S", "issuer": "i", "audience": "a"},
        {"kind": "service_account", "token_url": token_url, "issuer": "i", "private_key_env": "PEM"},
    ]
    for auth in kinds:
        c = client(api, auth, environ, retry={"max_attempts": 1})
        with pytest.raises(HttpError) as err:
            c.get("/me", params={"q": "1"})
        shown = " ".join([repr(c), str(c), repr(c.auth), str(err.value), repr(err.value), repr(vars(c.auth))])
        for secret in (SECRET, private.splitlines()[1]):
            assert secret not in shown, auth["kind"]
