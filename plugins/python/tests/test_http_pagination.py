"""Every ``[pagination]`` kind: a full walk, resuming from a stored position, and loop detection."""

import json

import pytest
from fake_api import FakeApi, FakeClock
from switchyard_plugin.http import HttpClient, HttpError

ITEMS = [{"id": n} for n in range(1, 8)]  # 7 items


@pytest.fixture
def api():
    with FakeApi() as server:
        yield server


def client(api, pagination, **extra):
    table = dict({"base_url": api.url + "/v1", "pagination": pagination}, **extra)
    return HttpClient.from_config(table, clock=FakeClock(), environ={"KEY": "k-secret"})


def ids(pages):
    return [[record["id"] for record in page.records] for page in pages]


def cursor_route(request):
    start = int(request.query.get("after", "0"))
    size = int(request.query["limit"])
    chunk = ITEMS[start : start + size]
    more = start + size < len(ITEMS)
    return 200, {}, {"data": chunk, "meta": {"next": str(start + size) if more else None}}


def test_cursor_walks_and_resumes_from_a_stored_position(api):
    api.route("GET", "/v1/items", cursor_route)
    pagination = {
        "kind": "cursor",
        "records_path": "/data",
        "cursor_param": "after",
        "cursor_path": "/meta/next",
        "limit_param": "limit",
        "page_size": 3,
    }
    c = client(api, pagination)
    pages = list(c.pages("/items", params={"sort": "asc"}))
    assert ids(pages) == [[1, 2, 3], [4, 5, 6], [7]]
    assert [p.next_position for p in pages] == [{"cursor": "3"}, {"cursor": "6"}, None]
    assert all(r.query["sort"] == "asc" for r in api.seen("/v1/items"))
    # A crash after the first page: the checkpoint held its next_position, as JSON.
    stored = json.loads(json.dumps(pages[0].next_position))
    assert ids(c.pages("/items", position=stored)) == [[4, 5, 6], [7]]


def test_a_repeated_cursor_is_a_permanent_error_not_an_endless_loop(api):
    api.route("GET", "/v1/items", lambda r: (200, {}, {"data": [1], "next": "same"}))
    c = client(api, {"kind": "cursor", "records_path": "/data", "cursor_param": "c", "cursor_path": "/next"})
    pages = c.pages("/items")
    assert next(pages).next_position == {"cursor": "same"}
    with pytest.raises(HttpError) as err:
        next(pages)
    assert (err.value.retryable, err.value.code) == (False, "pagination_loop")
    assert "same cursor twice" in err.value.message
    assert len(api.seen("/v1/items")) == 2


def test_offset_stops_on_a_short_page_and_resumes(api):
    def route(request):
        offset, limit = int(request.query["skip"]), int(request.query["take"])
        return 200, {}, ITEMS[offset : offset + limit]

    api.route("GET", "/v1/items", route)
    c = client(api, {"kind": "offset", "offset_param": "skip", "limit_param": "take", "page_size": 3})
    pages = list(c.pages("/items"))
    assert ids(pages) == [[1, 2, 3], [4, 5, 6], [7]]
    assert [p.next_position for p in pages] == [{"offset": 3}, {"offset": 6}, None]
    assert ids(c.pages("/items", position={"offset": 6})) == [[7]]


def test_page_numbers_stop_on_an_empty_page(api):
    def route(request):
        page, size = int(request.query["p"]), int(request.query["per_page"])
        return 200, {}, {"results": ITEMS[page * size : (page + 1) * size]}

    api.route("GET", "/v1/items", route)
    c = client(
        api,
        {
            "kind": "page",
            "records_path": "/results",
            "page_param": "p",
            "first_page": 0,
            "size_param": "per_page",
            "page_size": 4,
        },
    )
    pages = list(c.pages("/items"))
    assert ids(pages) == [[1, 2, 3, 4], [5, 6, 7]]  # the short page is the last
    assert [p.next_position for p in pages] == [{"page": 1}, None]
    assert ids(c.pages("/items", position={"page": 1})) == [[5, 6, 7]]


def test_page_numbers_without_a_size_stop_on_the_empty_page(api):
    api.route(
        "GET", "/v1/items", lambda r: (200, {}, {"results": [{"id": 1}] if r.query["page"] in ("1", "2") else []})
    )
    c = client(api, {"kind": "page", "records_path": "/results"})
    assert ids(c.pages("/items")) == [[1], [1], []]


def test_page_token_walks_resumes_and_detects_loops(api):
    tokens = {"": ("t1", [1, 2]), "t1": ("t2", [3]), "t2": (None, [4])}

    def route(request):
        following, data = tokens[request.query.get("pageToken", "")]
        body = {"items": [{"id": n} for n in data]}
        if following:
            body["nextPageToken"] = following
        return 200, {}, body

    api.route("GET", "/v1/items", route)
    pagination = {
        "kind": "page_token",
        "records_path": "/items",
        "token_param": "pageToken",
        "token_path": "/nextPageToken",
    }
    c = client(api, pagination)
    pages = list(c.pages("/items"))
    assert ids(pages) == [[1, 2], [3], [4]]
    assert pages[0].next_position == {"token": "t1"}
    assert ids(c.pages("/items", position={"token": "t1"})) == [[3], [4]]
    tokens["t2"] = ("t1", [4])  # the server goes round in circles
    with pytest.raises(HttpError) as err:
        list(c.pages("/items"))
    assert err.value.code == "pagination_loop"


def test_link_headers_are_followed_and_credentials_kept_out_of_positions(api):
    def route(request):
        page = int(request.query.get("page", "1"))
        assert request.query["api_key"] == "k-secret"
        headers = {}
        if page < 3:
            # Like GitHub, the server echoes every query parameter, the key included, into the link.
            headers["link"] = (
                f'<{api.url}/v1/items?page={page + 1}&api_key=k-secret>; rel="next", <{api.url}/v1/items?page=3>; rel="last"'
            )
        return 200, headers, [{"id": page}]

    api.route("GET", "/v1/items", route)
    c = client(api, {"kind": "link"}, auth={"kind": "api_key", "query": "api_key", "key_env": "KEY"})
    pages = list(c.pages("/items"))
    assert ids(pages) == [[1], [2], [3]]
    assert pages[0].next_position == {"url": f"{api.url}/v1/items?page=2"}
    assert "k-secret" not in json.dumps([p.next_position for p in pages])
    assert ids(c.pages("/items", position=pages[1].next_position)) == [[3]]


def test_a_link_back_to_a_visited_page_is_a_loop(api):
    api.route("GET", "/v1/items", lambda r: (200, {"link": f'<{api.url}/v1/items?page=2>; rel="next"'}, []))
    with pytest.raises(HttpError) as err:
        list(client(api, {"kind": "link"}).pages("/items"))
    assert err.value.code == "pagination_loop"


def test_records_missing_at_the_path_and_foreign_positions_are_permanent(api):
    api.route("GET", "/v1/items", lambda r: (200, {}, {"data": {"not": "a list"}}))
    c = client(api, {"kind": "offset", "records_path": "/data"})
    with pytest.raises(HttpError) as err:
        list(c.pages("/items"))
    assert (err.value.retryable, err.value.code) == (False, "bad_response")
    with pytest.raises(HttpError) as err:
        list(c.pages("/items", position={"cursor": "x"}))
    assert err.value.code == "bad_position"


def test_page_headers_go_with_every_page(api):
    def route(request):
        page = int(request.query.get("page", "1"))
        headers = {"link": f'<{api.url}/v1/items?page={page + 1}>; rel="next"'} if page < 3 else {}
        return 200, headers, [{"id": page}]

    api.route("GET", "/v1/items", route)
    version = {"X-GitHub-Api-Version": "2022-11-28"}
    pages = list(client(api, {"kind": "link"}).pages("/items", headers=version))
    assert ids(pages) == [[1], [2], [3]]
    assert [r.header("x-github-api-version") for r in api.seen("/v1/items")] == ["2022-11-28"] * 3
