"""Unit tests for switchyard_plugin.handshake: cookie, version negotiation, handshake line."""

import pytest
from switchyard_plugin import handshake
from switchyard_plugin.handshake import (
    HandshakeError,
    check_cookie,
    format_handshake_line,
    negotiate_version,
)


def test_cookie_must_match_exactly():
    check_cookie({handshake.MAGIC_COOKIE_KEY: handshake.MAGIC_COOKIE_VALUE})
    for environ in ({}, {handshake.MAGIC_COOKIE_KEY: ""}, {handshake.MAGIC_COOKIE_KEY: "nope"}):
        with pytest.raises(HandshakeError) as err:
            check_cookie(environ)
        assert "not meant to be executed directly" in str(err.value)


def test_constants_match_the_rust_wire_crate():
    assert handshake.MAGIC_COOKIE_KEY == "SWITCHYARD_PLUGIN_MAGIC_COOKIE"
    assert handshake.MAGIC_COOKIE_VALUE == "7f1c9a4e2b5d8e03a6c1f9b27d4e8a15"
    assert handshake.NOT_LAUNCHED_BY_HUB_MESSAGE.startswith("This binary is a Switchyard plugin.")


@pytest.mark.parametrize(
    "offer, supported, expected",
    [
        ("1", (1,), 1),
        ("3,1,2", (1, 2), 2),
        ("2,1", (1, 2), 2),
        (" 2 , x, 1", (1, 2), 2),
        ("1,2,3", (1,), 1),
        (None, (2, 1, 3), 1),
    ],
)
def test_negotiates_the_highest_common_version_in_any_order(offer, supported, expected):
    assert negotiate_version(offer, supported) == expected


@pytest.mark.parametrize("offer", ["5,6", "", "x,y", "0"])
def test_negotiation_fails_clearly_without_a_common_version(offer):
    with pytest.raises(HandshakeError) as err:
        negotiate_version(offer, (1,))
    assert "no common app protocol version" in str(err.value)
    assert "supports [1]" in str(err.value)


def test_handshake_line_matches_go_plugin_format():
    assert format_handshake_line(1, "/tmp/sy/plugin42") == "1|1|unix|/tmp/sy/plugin42|grpc|"


def test_handshake_line_refuses_multiplexing_explicitly():
    assert format_handshake_line(1, "/s/plugin1", multiplex_requested=True) == "1|1|unix|/s/plugin1|grpc||false"
