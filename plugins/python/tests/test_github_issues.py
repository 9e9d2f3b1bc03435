"""github-issues against a fake GitHub API (tests/fake_github.py), in process with a fake clock.

Paging through several pages, incremental sync with ``since``, resuming from a mid-walk
checkpoint, 401 as a permanent error, 403/429 rate limits waited for or handed to the hub,
pull requests filtered, configuration errors naming the key.
"""

import json

import pytest
from fake_api import FakeClock
from fake_github import REPO_ID, TOKEN, FakeGitHub, timestamp
from github_issues import GitHubIssues
from switchyard_plugin import Failure
from switchyard_plugin.http import HttpError

ENV = {"GITHUB_TOKEN": TOKEN}


@pytest.fixture
def github():
    with FakeGitHub() as fake:
        yield fake


def plugin_for(github, clock=None, environ=None, **config):
    plugin = GitHubIssues(environ=ENV if environ is None else environ, clock=clock or FakeClock())
    table = dict({"base_url": github.url, "owner": "octo-org", "repo": "hello-world", "token_env": "GITHUB_TOKEN"})
    table.update(config)
    errors = plugin.configure(table, "issues")
    assert errors == [], errors
    return plugin


def poll_all(plugin, checkpoint=None, max_records=0):
    batches = list(plugin.poll(checkpoint, max_records))
    return batches, [r.id for b in batches for r in b.records]


def state(batch):
    return json.loads(batch.checkpoint)


def issue_id(number):
    return str(1_000_000 + number)


def test_pages_through_every_page_with_the_documented_request(github):
    for number in range(1, 8):
        github.add(number, updated_minute=number)
    plugin = plugin_for(github, page_size=3)
    batches, ids = poll_all(plugin)

    # Every issue once, in updated order; each page asks since= the last updated_at read (keyset).
    assert ids == [issue_id(n) for n in range(1, 8)]
    assert [len(b.records) for b in batches] == [3, 2, 2]
    requests = github.list_requests()
    assert [r.query.get("since") for r in requests] == [None, timestamp(3), timestamp(5)]
    for request in requests:
        assert request.path == "/repos/octo-org/hello-world/issues"
        assert {k: v for k, v in request.query.items() if k != "since"} == {
            "state": "all",
            "sort": "updated",
            "direction": "asc",
            "per_page": "3",
            "page": "1",
        }
        assert request.header("authorization") == f"Bearer {TOKEN}"
        assert request.header("accept") == "application/vnd.github+json"
        assert request.header("x-github-api-version") == "2022-11-28"
    repo = f"{github.url}/repos/octo-org/hello-world"
    assert [state(b) for b in batches] == [
        {"v": 1, "repo": repo, "mark": timestamp(m), "page": 1} for m in (3, 5, 7)
    ]
    record = batches[0].records[0]
    assert record.type == "github.issue" and record.payload["number"] == 1 and record.payload["title"] == "Issue 1"
    assert record.metadata == {"repository": "octo-org/hello-world", "number": "1"}
    assert record.occurred_at is not None and record.occurred_at.isoformat() == "2026-11-20T09:01:00+00:00"


def test_pages_of_issues_sharing_one_second_follow_page_numbers(github):
    # A bulk edit: five issues updated in the same second, more than a page of them.
    for number in range(1, 6):
        github.add(number, updated_minute=10)
    github.add(6, updated_minute=11)
    batches, ids = poll_all(plugin_for(github, page_size=2))
    assert sorted(ids) == [issue_id(n) for n in range(1, 7)] and len(ids) == 6
    queries = [(r.query.get("since"), r.query["page"]) for r in github.list_requests()]
    assert queries == [(None, "1"), (timestamp(10), "1"), (timestamp(10), "2"), (timestamp(10), "3")]
    assert state(batches[1])["page"] == 2 and state(batches[-1])["page"] == 1


def test_later_polls_ask_since_the_mark_and_read_only_what_changed(github):
    for number in range(1, 6):
        github.add(number, updated_minute=number)
    plugin = plugin_for(github, page_size=2)
    batches, _ = poll_all(plugin)
    checkpoint = batches[-1].checkpoint

    github.update(2, updated_minute=50, title="Issue 2, edited")
    github.add(6, updated_minute=51)
    seen_before = len(github.list_requests())
    batches, ids = poll_all(plugin, checkpoint)

    request = github.list_requests()[seen_before]
    assert request.query["since"] == timestamp(5)
    # Issue 5 is at the mark: GitHub's since is inclusive, so it is read again (the hub's upsert makes it a no-op).
    assert ids == [issue_id(5), issue_id(2), issue_id(6)]
    assert batches[0].records[1].payload["title"] == "Issue 2, edited"
    assert state(batches[-1])["mark"] == timestamp(51)

    # Nothing changed: one request, only the issue at the mark again, the same checkpoint.
    seen_before = len(github.list_requests())
    again, ids = poll_all(plugin, batches[-1].checkpoint)
    assert ids == [issue_id(6)] and again[-1].checkpoint == batches[-1].checkpoint
    assert len(github.list_requests()) == seen_before + 1


def test_an_interrupted_backfill_resumes_at_its_page_and_loses_nothing_that_moved(github):
    for number in range(1, 10):
        github.add(number, updated_minute=number)
    plugin = plugin_for(github, page_size=3)
    walk = plugin.poll(None, 0)
    first = next(walk)
    walk.close()  # the poll dies after its first batch was committed
    assert [r.id for r in first.records] == [issue_id(n) for n in (1, 2, 3)]

    # Edited meanwhile: issue 1 moves to the end of the updated order. With page numbers
    # (page=2 of the original walk) issue 4 would slide onto page 1 and be skipped.
    github.update(1, updated_minute=60)
    restarted = plugin_for(github, page_size=3)  # a new process
    seen_before = len(github.list_requests())
    batches, ids = poll_all(restarted, first.checkpoint)
    resumed = github.list_requests()[seen_before]
    assert resumed.query["since"] == timestamp(3) and resumed.query["page"] == "1"
    # Issue 3 (at the mark) is read again; nothing is skipped; issue 1 comes back with its edit.
    assert ids == [issue_id(n) for n in (3, 4, 5, 6, 7, 8, 9, 1)]
    assert state(batches[-1])["mark"] == timestamp(60)


def test_max_records_ends_the_poll_at_a_page_boundary(github):
    for number in range(1, 8):
        github.add(number, updated_minute=number)
    plugin = plugin_for(github, page_size=3)
    batches, ids = poll_all(plugin, max_records=3)
    assert ids == [issue_id(n) for n in (1, 2, 3)] and len(github.list_requests()) == 1
    batches, ids = poll_all(plugin, batches[-1].checkpoint, max_records=3)
    assert ids == [issue_id(n) for n in (3, 4, 5)]  # 3 is at the mark: read again
    batches, ids = poll_all(plugin, batches[-1].checkpoint, max_records=3)
    assert ids == [issue_id(n) for n in (5, 6, 7)] and state(batches[-1])["mark"] == timestamp(7)
    assert len(github.list_requests()) == 3


def test_pull_requests_are_skipped_unless_asked_for_but_move_the_mark(github):
    github.add(1, updated_minute=1)
    github.add(2, updated_minute=2, pull_request=True)
    batches, ids = poll_all(plugin_for(github))
    assert ids == [issue_id(1)]
    assert state(batches[-1])["mark"] == timestamp(2)

    batches, ids = poll_all(plugin_for(github, include_pull_requests=True))
    assert ids == [issue_id(1), issue_id(2)]
    assert [r.type for r in batches[0].records] == ["github.issue", "github.pull_request"]


def test_a_refused_token_is_a_permanent_error_naming_the_variable(github):
    github.add(1, updated_minute=1)
    plugin = plugin_for(github)
    github.token = "a-rotated-token"
    with pytest.raises(HttpError) as err:
        poll_all(plugin)
    assert not err.value.retryable and err.value.code == "auth_failed" and err.value.status == 401
    assert "GITHUB_TOKEN" in err.value.message and TOKEN not in err.value.message
    assert len(github.list_requests()) == 1  # a static token is not tried again

    # At start, the same refusal is a retryable failure naming token_env: Configure answers
    # UNAVAILABLE and the hub retries the start under its restart policy before `failed`.
    with pytest.raises(Failure) as refused:
        GitHubIssues(environ=ENV, clock=FakeClock()).configure(
            {"base_url": github.url, "owner": "octo-org", "repo": "hello-world", "token_env": "GITHUB_TOKEN"}, "issues"
        )
    assert refused.value.retryable and refused.value.code == "auth_failed"
    assert "token_env" in refused.value.message and "HTTP 401" in refused.value.message
    assert TOKEN not in refused.value.message


def test_an_unknown_repository_fails_configure_on_repo(github):
    errors = GitHubIssues(environ=ENV, clock=FakeClock()).configure(
        {"base_url": github.url, "owner": "octo-org", "repo": "nope", "token_env": "GITHUB_TOKEN"}, "issues"
    )
    assert [e.field for e in errors] == ["repo"] and "octo-org/nope" in errors[0].message


@pytest.mark.parametrize("status", [403, 429])
def test_a_used_up_rate_limit_is_waited_for_until_its_reset(github, status):
    for number in range(1, 4):
        github.add(number, updated_minute=number)
    clock = FakeClock()
    plugin = plugin_for(github, clock=clock, page_size=2)
    reset = int(clock.now) + 45
    github.fail_next(
        status,
        {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
        {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com"},
    )
    batches, ids = poll_all(plugin)
    assert ids == [issue_id(n) for n in (1, 2, 3)]
    assert clock.sleeps == [45.0]
    assert len(github.list_requests()) == 3  # the refused page was asked again


def test_a_secondary_rate_limit_honours_retry_after(github):
    github.add(1, updated_minute=1)
    clock = FakeClock()
    plugin = plugin_for(github, clock=clock)
    github.fail_next(403, {"retry-after": "60"}, {"message": "You have exceeded a secondary rate limit."})
    _, ids = poll_all(plugin)
    assert ids == [issue_id(1)] and clock.sleeps == [60.0]


def test_a_long_rate_limit_is_handed_to_the_hub_as_retryable(github):
    github.add(1, updated_minute=1)
    clock = FakeClock()
    plugin = plugin_for(github, clock=clock)
    github.fail_next(
        403,
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(clock.now) + 90)},
        {"message": "API rate limit exceeded"},
    )
    with pytest.raises(HttpError) as err:
        poll_all(plugin)
    # Over the plugin's 60 s: not waited for here, the hub waits instead (and the poll timeout stays clear).
    assert err.value.retryable and err.value.code == "rate_limited"
    assert err.value.retry_after.total_seconds() == 90
    assert clock.sleeps == []


def test_a_rate_limited_start_check_fails_configure_as_retryable_without_waiting(github):
    clock = FakeClock()
    github.api.route(
        "GET",
        "/repos/octo-org/hello-world",
        lambda request: (429, {"retry-after": "30"}, {"message": "You have exceeded a secondary rate limit."}),
    )
    plugin = GitHubIssues(environ=ENV, clock=clock)
    table = {"base_url": github.url, "owner": "octo-org", "repo": "hello-world", "token_env": "GITHUB_TOKEN"}
    with pytest.raises(HttpError) as err:
        plugin.configure(table, "issues")
    assert err.value.retryable and err.value.code == "rate_limited" and clock.sleeps == []


def test_a_checkpoint_of_another_repository_starts_over_and_garbage_is_refused(github):
    github.add(1, updated_minute=1)
    plugin = plugin_for(github)
    other = json.dumps({"v": 1, "repo": "https://api.github.com/repos/a/b", "mark": timestamp(99)}).encode()
    _, ids = poll_all(plugin, other)
    assert ids == [issue_id(1)] and "since" not in github.list_requests()[-1].query
    repo = plugin.settings.repo_path
    bad_mark = json.dumps({"v": 1, "repo": repo, "mark": "yesterday"}).encode()
    bad_page = json.dumps({"v": 1, "repo": repo, "mark": None, "page": 0}).encode()
    for garbage in (b"not json", b'{"v": 7}', bad_mark, bad_page):
        with pytest.raises(Failure) as err:
            poll_all(plugin, garbage)
        assert not err.value.retryable and err.value.code == "bad_checkpoint"


def test_a_malformed_list_is_a_permanent_bad_response(github):
    plugin = plugin_for(github)
    github.fail_next(200, {}, [{"id": "x", "updated_at": timestamp(1)}])
    with pytest.raises(Failure) as err:
        poll_all(plugin)
    assert not err.value.retryable and err.value.code == "bad_response"


@pytest.mark.parametrize(
    "config, environ, field, words",
    [
        ({"colour": "red"}, ENV, "colour", ["unknown key"]),
        ({"page_size": 101}, ENV, "page_size", ["1 to 100"]),
        ({"page_size": "100"}, ENV, "page_size", ["integer"]),
        ({"include_pull_requests": "yes"}, ENV, "include_pull_requests", ["true or false"]),
        ({"owner": "octo/../x"}, ENV, "owner", ["GitHub name"]),
        ({"repo": None}, ENV, "repo", ["required"]),
        ({"base_url": "ftp://github"}, ENV, "base_url", ["http"]),
        ({"base_url": "https://me:pw@github.example"}, ENV, "base_url", ["user info"]),  # and pw is not echoed
        ({"token_env": "NOT_SET"}, ENV, "token_env", ["NOT_SET", "not set"]),
        ({}, {"GITHUB_TOKEN": ""}, "token_env", ["GITHUB_TOKEN", "not set"]),
    ],
)
def test_bad_configuration_names_the_key(config, environ, field, words):
    table = {"owner": "octo-org", "repo": "hello-world", "token_env": "GITHUB_TOKEN"}
    table.update(config)
    table = {k: v for k, v in table.items() if v is not None}
    errors = GitHubIssues(environ=environ, clock=FakeClock()).configure(table, "issues")
    assert [e.field for e in errors] == [field], errors
    assert all(word in errors[0].message for word in words), errors[0].message
    assert TOKEN not in errors[0].message and "pw@" not in errors[0].message
