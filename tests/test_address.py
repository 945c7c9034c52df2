"""Tests of envelope address parsing and resolution (twin.stages.address)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.stages.address import (
    NULL_ADDRESS,
    AddressResolver,
    EnvelopeAddress,
    RewriteSettings,
    parse_address,
    parse_path_argument,
)

OURS = RewriteSettings(local_domains=("ece.example.edu", "mail.ece.example.edu"))


def resolve(text: str, rewrite: RewriteSettings = OURS):
    address = parse_address(text)
    assert address is not None, text
    return AddressResolver(rewrite).resolve(address)


def test_plain_mail_from_with_parameters():
    parsed = parse_path_argument(
        "FROM:<bob@example.org> SIZE=1234 BODY=8BITMIME", "FROM"
    )
    assert parsed.ok
    assert parsed.address == EnvelopeAddress(
        "bob@example.org", "bob", False, "example.org"
    )
    assert parsed.params == (("SIZE", "1234"), ("BODY", "8BITMIME"))


@pytest.mark.parametrize(
    "argument, text, local, quoted, domain, route",
    [
        ("FROM:<>", "", "", False, None, ()),
        ("from: <Bob@Example.ORG>", "Bob@Example.ORG", "Bob", False, "Example.ORG", ()),
        ("FROM:bob@example.org", "bob@example.org", "bob", False, "example.org", ()),
        (
            'FROM:<"john smith"@example.org>',
            '"john smith"@example.org',
            "john smith",
            True,
            "example.org",
            (),
        ),
        ('FROM:<"a\\"b"@x.org>', '"a\\"b"@x.org', 'a"b', True, "x.org", ()),
        ('FROM:<"a>b"@x.org>', '"a>b"@x.org', "a>b", True, "x.org", ()),
        (
            "FROM:<@a.org,@b.org:user@c.org>",
            "@a.org,@b.org:user@c.org",
            "user",
            False,
            "c.org",
            ("a.org", "b.org"),
        ),
        ("FROM:<postmaster>", "postmaster", "postmaster", False, None, ()),
        ("FROM:<u@[192.0.2.1]>", "u@[192.0.2.1]", "u", False, "[192.0.2.1]", ()),
        ("FROM:<u%v@w>", "u%v@w", "u%v", False, "w", ()),
        ("FROM:<a@b@c.org>", "a@b@c.org", "a@b", False, "c.org", ()),
        ("FROM:<u@ece.example.edu.>", "u@ece.example.edu.", "u", False,
         "ece.example.edu.", ()),
    ],
)  # fmt: skip
def test_paths_parse_like_postfix(argument, text, local, quoted, domain, route):
    parsed = parse_path_argument(argument, "FROM")
    assert parsed.ok, argument
    assert parsed.address == EnvelopeAddress(text, local, quoted, domain, route)


def test_null_sender_is_the_null_address():
    parsed = parse_path_argument("FROM:<>", "FROM")
    assert parsed.address is NULL_ADDRESS and parsed.address.is_null


@pytest.mark.parametrize(
    "argument, error",
    [
        ("<bob@example.org>", "syntax"),
        ("FROM <bob@example.org>", "syntax"),
        ("TO:<bob@example.org>", "syntax"),
        ("FROM:<bob@example.org", "address"),
        ("FROM:<bob@example.org>junk", "address"),
        ('FROM:<"bob@example.org>', "address"),
        ("FROM:<bob smith@example.org>", "address"),
        ("FROM:<bob@exa mple.org>", "address"),
        ("FROM:<bob@>", "address"),
        ("FROM:<@example.org>", "address"),
        ("FROM:<@a.org:>", "address"),
        ("FROM:<@a.org,b.org:u@c.org>", "address"),
        ("FROM:<bob@example..org>", "address"),
        ("FROM:<b<o>b@x.org>", "address"),
        ("FROM:", "address"),
        ("FROM:<bob@x.org> SIZE==3", "parameter"),
        ("FROM:<bob@x.org> =3", "parameter"),
    ],
)
def test_malformed_arguments_are_classified(argument, error):
    parsed = parse_path_argument(argument, "FROM")
    assert parsed.error == error
    assert not parsed.ok


def test_rcpt_to_keyword_and_parameters():
    parsed = parse_path_argument("TO:<a@b.org> NOTIFY=SUCCESS,FAILURE ORCPT", "TO")
    assert parsed.params == (("NOTIFY", "SUCCESS,FAILURE"), ("ORCPT", None))
    assert parse_path_argument("FROM:<a@b.org>", "TO").error == "syntax"


# (address, local part, domain, local?, routed?) under Postfix's defaults
DEFAULT_CASES = [
    ("alice@ece.example.edu", "alice", "ece.example.edu", True, False),
    ("alice@ECE.Example.EDU", "alice", "ece.example.edu", True, False),
    ("alice@ece.example.edu.", "alice", "ece.example.edu", True, False),
    ("alice", "alice", "ece.example.edu", True, False),
    ("alice@mail.ece.example.edu", "alice", "mail.ece.example.edu", True, False),
    ("user@other.com", "user", "other.com", False, False),
    ("user@OTHER.com.", "user", "other.com", False, False),
    ("user%other.com@ece.example.edu", "user", "other.com", False, False),
    ("other.com!user@ece.example.edu", "user", "other.com", False, False),
    ("a.org!b.org!user@ece.example.edu", "b.org!user", "a.org", False, True),
    ('"user@other.com"@ece.example.edu', "user", "other.com", False, False),
    ('"user%other.com"@ece.example.edu', "user", "other.com", False, False),
    ('"other.com!user"@ece.example.edu', "user", "other.com", False, False),
    ("@ece.example.edu:user@other.com", "user", "other.com", False, False),
    ("@other.com:alice@ece.example.edu", "alice", "ece.example.edu", True, False),
    ("user@other.com@ece.example.edu", "user", "other.com", False, False),
    ("user%other.com%ece.example.edu@ece.example.edu", "user", "other.com", False,
     False),
    ("alice%ece.example.edu@ece.example.edu", "alice", "ece.example.edu", True,
     False),
    ("user%other.com@elsewhere.org", "user%other.com", "elsewhere.org", False, True),
    ('"john smith"@ece.example.edu', "john smith", "ece.example.edu", True, False),
    ('""@ece.example.edu', "MAILER-DAEMON", "ece.example.edu", True, False),
    ("u@[192.0.2.1]", "u", "[192.0.2.1]", False, False),
]  # fmt: skip


@pytest.mark.parametrize("text, local, domain, is_local, routed", DEFAULT_CASES)
def test_resolution_finds_the_real_destination(text, local, domain, is_local, routed):
    result = resolve(text)
    assert (result.local_part, result.domain, result.is_local, result.routed) == (
        local,
        domain,
        is_local,
        routed,
    )


def test_rewrites_count_the_routing_steps():
    assert resolve("alice@ece.example.edu").rewrites == 0
    assert not resolve("alice@ece.example.edu").carried_routing
    assert resolve("user%other.com@ece.example.edu").rewrites == 1
    assert resolve('"user@other.com"@ece.example.edu').rewrites == 2  # open, split
    assert resolve("@a.org:alice@ece.example.edu").rewrites == 1
    assert resolve("@a.org:alice@ece.example.edu").carried_routing
    assert resolve("user%other.com@ece.example.edu").address == "user@other.com"


def test_without_the_percent_hack_the_address_stays_local_but_routed():
    off = RewriteSettings(local_domains=OURS.local_domains, allow_percent_hack=False)
    result = resolve("user%other.com@ece.example.edu", off)
    assert (result.local_part, result.is_local, result.routed) == (
        "user%other.com",
        True,
        True,
    )
    assert resolve('"user%other.com"@ece.example.edu', off).routed


def test_without_bang_swapping_the_address_stays_local_but_routed():
    off = RewriteSettings(local_domains=OURS.local_domains, swap_bangpath=False)
    result = resolve("other.com!user@ece.example.edu", off)
    assert (result.local_part, result.is_local, result.routed) == (
        "other.com!user",
        True,
        True,
    )


def test_without_dequoting_a_quoted_routing_attempt_stays_routed():
    off = RewriteSettings(
        local_domains=OURS.local_domains, resolve_dequoted_address=False
    )
    result = resolve('"user@other.com"@ece.example.edu', off)
    assert (result.local_part, result.is_local, result.routed) == (
        "user@other.com",
        True,
        True,
    )


def test_relay_domains_match_their_subdomains():
    rewrite = RewriteSettings(local_domains=("ece.example.edu",),
                              relay_domains=("example.edu",))  # fmt: skip
    assert resolve("u@cs.example.edu", rewrite).is_relay_domain
    assert resolve("u@example.edu", rewrite).is_relay_domain
    assert not resolve("u@badexample.edu", rewrite).is_relay_domain
    assert not resolve("u@cs.example.edu").is_relay_domain


def test_myorigin_qualifies_bare_names():
    rewrite = RewriteSettings(local_domains=("a.org", "b.org"), myorigin="b.org")
    assert resolve("alice", rewrite).address == "alice@b.org"
    assert resolve("alice").address == "alice@ece.example.edu"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"local_domains": ()}, "local_domains is empty"),
        ({"local_domains": ("bad domain",)}, "'bad domain' is not a host name"),
        ({"relay_domains": ("x.org.",)}, "'x.org.' is not a host name"),
    ],
)
def test_bad_rewrite_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RewriteSettings(**kwargs)


ADDRESS_CHARS = st.sampled_from(list('ab.@%!":<>,[] \\\tAZ09-_=') + ["\x00", "é"])


@settings(max_examples=400, deadline=None)
@given(st.text(ADDRESS_CHARS, max_size=30), st.sampled_from(["FROM", "TO"]))
def test_parsing_and_resolving_never_raise(text, keyword):
    for argument in (f"{keyword}:<{text}>", f"{keyword}:{text}", text):
        parsed = parse_path_argument(argument, keyword)
        assert parsed.error in ("", "syntax", "address", "parameter")
        if parsed.address is not None:
            result = AddressResolver(OURS).resolve(parsed.address)
            assert result.domain
            assert result.is_local == (result.domain in OURS.local_domains)
            # a local result never hides another destination unless flagged
            assert result.routed == any(c in result.local_part for c in "@!%")
