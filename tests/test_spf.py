"""SPF check_host() after RFC 7208, in scenarios modelled on the categories of the
RFC 7208 test suite (record lookup, initial processing, syntax, all, include,
redirect, a, mx, ptr, ip4/ip6, exists, macros, limits, exp), written for
mailtwin; plus exact work counts and the Received-SPF header."""

import pytest

from twin.stages.dns import Dns, DnsSettings
from twin.stages.spf import (
    CPU_UNITS,
    SpfChecker,
    SpfCode,
    SpfSettings,
    received_spf_header,
)
from twin.stages.work import Work


def _txt(record):
    return {"TXT": [record]}


ZONE = {
    # record lookup
    "nospf.test": {"TXT": ["some other text", "v=spf10 -all"]},
    "two.test": {"TXT": ["v=spf1 -all", "v=spf1 +all"]},
    "split.test": {"TXT": [("v=spf1 ip4:1.2.3.4", " -all")]},
    "upper.test": _txt("V=SPF1 ip4:1.2.3.4 -all"),
    "onlya.test": {"A": ["1.2.3.4"]},
    "txttimeout.test": {"timeout": ["TXT"]},
    # syntax
    "allarg.test": _txt("v=spf1 -all:foo"),
    "cidr33.test": _txt("v=spf1 ip4:1.2.3.4/33 -all"),
    "cidr032.test": _txt("v=spf1 ip4:1.2.3.4/032 -all"),
    "unknownmech.test": _txt("v=spf1 foo:bar -all"),
    "lateerror.test": _txt("v=spf1 +all ip4:300.1.1.1"),
    "toplabel.test": _txt("v=spf1 a:museum -all"),
    "numtop.test": _txt("v=spf1 a:foo.example.123 -all"),
    "tworedir.test": _txt("v=spf1 redirect=a.test redirect=b.test"),
    "unknownmod.test": _txt("v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all"),
    "badmacro.test": _txt("v=spf1 a:%{x}.example.com -all"),
    "cmacro.test": _txt("v=spf1 exists:%{c}.example.com -all"),
    "zerodigit.test": _txt("v=spf1 exists:%{d0}.example.com -all"),
    "modqual.test": _txt("v=spf1 -redirect=a.test"),
    "spaces.test": _txt("v=spf1  ip4:1.2.3.4   -all  "),
    # qualifiers and all
    "pass.test": _txt("v=spf1 +all"),
    "fail.test": _txt("v=spf1 -all"),
    "soft.test": _txt("v=spf1 ~all"),
    "neutral.test": _txt("v=spf1 ?all"),
    "empty.test": _txt("v=spf1"),
    # ip4 / ip6
    "net.test": _txt("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"),
    "zero.test": _txt("v=spf1 ip4:0.0.0.0/0 -all"),
    # a and mx, with CIDR
    "a.test": {"TXT": ["v=spf1 a -all"], "A": ["1.2.3.4"], "AAAA": ["2001:db8::4"]},
    "acidr.test": _txt("v=spf1 a:a.test/24//64 -all"),
    "mx.test": {"TXT": ["v=spf1 mx -all"], "MX": ["10 mx1.mx.test", "20 mx2.mx.test"]},
    "mx1.mx.test": {"A": ["10.0.0.1"]},
    "mx2.mx.test": {"A": ["10.0.0.2"], "AAAA": ["2001:db8::2"]},
    "mxcidr.test": {"TXT": ["v=spf1 mx:mx.test/30 -all"]},
    "mxmany.test": {"TXT": ["v=spf1 mx -all"],
                    "MX": [f"{i} mx{i}.mxmany.test" for i in range(11)]},
    "mxslow.test": {"TXT": ["v=spf1 mx -all"], "MX": ["10 slowhost.test"]},
    "slowhost.test": {"timeout": True},
    "aslow.test": _txt("v=spf1 a:slowhost.test -all"),
    # include
    "inc.test": _txt("v=spf1 include:pass.test -all"),
    "incfail.test": _txt("v=spf1 include:fail.test ~all"),
    "incnone.test": _txt("v=spf1 include:nospf.test -all"),
    "incperm.test": _txt("v=spf1 include:allarg.test -all"),
    "inctemp.test": _txt("v=spf1 include:txttimeout.test -all"),
    "incexp.test": _txt("v=spf1 include:expfail.test ?all"),
    # redirect
    "redir.test": _txt("v=spf1 ip4:9.9.9.9 redirect=fail.test"),
    "redirall.test": _txt("v=spf1 ?all redirect=fail.test"),
    "redirnone.test": _txt("v=spf1 redirect=nospf.test"),
    "redirmacro.test": _txt("v=spf1 redirect=%{d1}"),
    # exists and ptr
    "exists.test": _txt("v=spf1 exists:%{ir}.%{v}.bl.exists.test -all"),
    "4.3.2.1.in-addr.bl.exists.test": {"A": ["127.0.0.2"]},
    "ptr.test": _txt("v=spf1 ptr -all"),
    "ptrother.test": _txt("v=spf1 ptr:mail.other.test -all"),
    "4.3.2.1.in-addr.arpa": {"PTR": ["host.ptr.test", "mail.other.test"]},
    "host.ptr.test": {"A": ["1.2.3.4"]},
    "mail.other.test": {"A": ["5.6.7.8"]},
    "ptrslow.test": _txt("v=spf1 ptr -all"),
    "5.5.5.5.in-addr.arpa": {"timeout": True},
    # macros
    "macro.test": _txt("v=spf1 exists:%{l2r-}.%{o}.%{d2}.%{h}.m.macro.test -all"),
    "b.c.user.macro.test.macro.test.mx.example.org.m.macro.test": {
        "A": ["127.0.0.2"]},
    "escape.test": {"TXT": ["v=spf1 -all exp=msg.escape.test"]},
    "msg.escape.test": _txt("%{S} at %{i} via %{v}: see %{h}%%%_%-"),
    "ip6.test": _txt("v=spf1 exists:%{ir}.%{v}.bl.ip6.test -all"),
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.bl.ip6.test":
        {"A": ["127.0.0.2"]},
    "pmacro.test": _txt("v=spf1 exists:%{p}.p.pmacro.test -all"),
    "host.ptr.test.p.pmacro.test": {"A": ["127.0.0.2"]},
    "stl.test": _txt("v=spf1 -all exp=e.stl.test"),
    "e.stl.test": _txt("%{d} failed for %{s} at %{t} via %{r}"),
    # limits
    "loop.test": _txt("v=spf1 include:loop.test -all"),
    "void3.test": _txt("v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test +all"),
    "void2.test": _txt("v=spf1 a:n1.void.test a:n2.void.test +all"),
    "mxvoid.test": _txt("v=spf1 mx:n1.void.test mx:n2.void.test mx:n3.void.test"),
    # exp
    "expfail.test": _txt("v=spf1 -all exp=why.expfail.test"),
    "why.expfail.test": _txt("%{i} is not one of %{d}'s designated mail servers."),
    "expmulti.test": _txt("v=spf1 -all exp=two.expmulti.test"),
    "two.expmulti.test": {"TXT": ["one", "two"]},
    "expbad.test": _txt("v=spf1 -all exp=bad.expbad.test"),
    "bad.expbad.test": _txt("%{x} is not a macro"),
    "expredir.test": _txt("v=spf1 redirect=expfail.test exp=why.escape.test"),
}
for _i in range(10):  # chain0 -> chain10: ten includes; chain11 adds an a: first
    ZONE[f"chain{_i}.test"] = _txt(f"v=spf1 include:chain{_i + 1}.test -all")
ZONE["chain10.test"] = _txt("v=spf1 ip4:1.2.3.4 -all")
ZONE["chain11.test"] = _txt("v=spf1 a:mx1.mx.test include:chain1.test -all")
for _i in range(3):
    ZONE[f"lots{_i}.test"] = _txt("v=spf1 " + " ".join(
        f"a:x{j}.lots.test" for j in range(4)) + " ?all")


# (name, RFC 7208 section, domain, ip, sender, result, explanation or None)
SCENARIOS = [
    ("no-spf-record", "4.5", "nospf.test", "1.2.3.4", "u@nospf.test", "none", None),
    ("nxdomain", "4.3", "nosuch.test", "1.2.3.4", "u@nosuch.test", "none", None),
    ("two-records", "4.5", "two.test", "1.2.3.4", "u@two.test", "permerror", None),
    ("multi-string-txt", "3.3", "split.test", "1.2.3.5", "u@split.test", "fail",
     None),
    ("version-case", "4.5", "upper.test", "1.2.3.4", "u@upper.test", "pass", None),
    ("no-txt-only-a", "4.5", "onlya.test", "1.2.3.4", "u@onlya.test", "none", None),
    ("txt-timeout", "4.4", "txttimeout.test", "1.2.3.4", "u@txttimeout.test",
     "temperror", None),
    ("empty-label", "4.3", "foo..test", "1.2.3.4", "u@foo..test", "none", None),
    ("single-label", "4.3", "localhost", "1.2.3.4", "u@localhost", "none", None),
    ("long-label", "4.3", "x" * 64 + ".test", "1.2.3.4", "u@x.test", "none", None),
    ("all-with-arg", "5.1", "allarg.test", "1.2.3.4", "u@allarg.test", "permerror",
     None),
    ("cidr-too-long", "5.6", "cidr33.test", "1.2.3.4", "u@cidr33.test", "permerror",
     None),
    ("cidr-leading-zero", "5.6", "cidr032.test", "1.2.3.4", "u@cidr032.test",
     "permerror", None),
    ("unknown-mechanism", "4.6.1", "unknownmech.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("error-after-match", "4.6", "lateerror.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("only-top-label", "7.1", "toplabel.test", "1.2.3.4", "u@x.test", "permerror",
     None),
    ("numeric-top-label", "7.1", "numtop.test", "1.2.3.4", "u@x.test", "permerror",
     None),
    ("two-redirects", "6", "tworedir.test", "1.2.3.4", "u@x.test", "permerror",
     None),
    ("unknown-modifier-ignored", "6", "unknownmod.test", "1.2.3.4", "u@x.test",
     "pass", None),
    ("unknown-macro-letter", "7.1", "badmacro.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("c-macro-outside-exp", "7.2", "cmacro.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("zero-digit-transformer", "7.3", "zerodigit.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("modifier-with-qualifier", "4.6.1", "modqual.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("extra-spaces", "4.6.1", "spaces.test", "1.2.3.4", "u@x.test", "pass", None),
    ("plus-all", "5.1", "pass.test", "1.2.3.4", "u@pass.test", "pass", None),
    ("minus-all", "5.1", "fail.test", "1.2.3.4", "u@fail.test", "fail", None),
    ("tilde-all", "5.1", "soft.test", "1.2.3.4", "u@soft.test", "softfail", None),
    ("question-all", "5.1", "neutral.test", "1.2.3.4", "u@x.test", "neutral", None),
    ("no-match-default-neutral", "4.7", "empty.test", "1.2.3.4", "u@x.test",
     "neutral", None),
    ("ip4-in", "5.6", "net.test", "192.0.2.200", "u@net.test", "pass", None),
    ("ip4-out", "5.6", "net.test", "192.0.3.1", "u@net.test", "fail", None),
    ("ip6-in", "5.6", "net.test", "2001:db8:ffff::1", "u@net.test", "pass", None),
    ("ip6-out", "5.6", "net.test", "2001:db9::1", "u@net.test", "fail", None),
    ("ipv4-mapped-ipv6", "5", "net.test", "::ffff:192.0.2.7", "u@net.test", "pass",
     None),
    ("ip4-slash-zero", "5.6", "zero.test", "8.8.8.8", "u@x.test", "pass", None),
    ("a-match", "5.3", "a.test", "1.2.3.4", "u@a.test", "pass", None),
    ("a-no-match", "5.3", "a.test", "1.2.3.5", "u@a.test", "fail", None),
    ("a-aaaa-match", "5.3", "a.test", "2001:db8::4", "u@a.test", "pass", None),
    ("a-cidr4", "5.3", "acidr.test", "1.2.3.200", "u@x.test", "pass", None),
    ("a-cidr6", "5.3", "acidr.test", "2001:db8::ffff", "u@x.test", "pass", None),
    ("a-cidr-miss", "5.3", "acidr.test", "1.2.4.1", "u@x.test", "fail", None),
    ("a-timeout", "5.3", "aslow.test", "1.2.3.4", "u@x.test", "temperror", None),
    ("mx-first", "5.4", "mx.test", "10.0.0.1", "u@mx.test", "pass", None),
    ("mx-second", "5.4", "mx.test", "10.0.0.2", "u@mx.test", "pass", None),
    ("mx-ipv6", "5.4", "mx.test", "2001:db8::2", "u@mx.test", "pass", None),
    ("mx-miss", "5.4", "mx.test", "10.0.0.3", "u@mx.test", "fail", None),
    ("mx-cidr", "5.4", "mxcidr.test", "10.0.0.3", "u@x.test", "pass", None),
    ("mx-over-10-names", "4.6.4", "mxmany.test", "10.0.0.3", "u@x.test",
     "permerror", None),
    ("mx-host-timeout", "5.4", "mxslow.test", "10.0.0.3", "u@x.test", "temperror",
     None),
    ("include-pass", "5.2", "inc.test", "1.2.3.4", "u@inc.test", "pass", None),
    ("include-fail-no-match", "5.2", "incfail.test", "1.2.3.4", "u@x.test",
     "softfail", None),
    ("include-none", "5.2", "incnone.test", "1.2.3.4", "u@x.test", "permerror",
     None),
    ("include-permerror", "5.2", "incperm.test", "1.2.3.4", "u@x.test", "permerror",
     None),
    ("include-temperror", "5.2", "inctemp.test", "1.2.3.4", "u@x.test", "temperror",
     None),
    ("include-exp-ignored", "6.2", "incexp.test", "1.2.3.4", "u@x.test", "neutral",
     None),
    ("redirect-followed", "6.1", "redir.test", "1.2.3.4", "u@redir.test", "fail",
     None),
    ("redirect-after-match", "6.1", "redir.test", "9.9.9.9", "u@redir.test", "pass",
     None),
    ("redirect-ignored-with-all", "6.1", "redirall.test", "1.2.3.4", "u@x.test",
     "neutral", None),
    ("redirect-to-none", "6.1", "redirnone.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("redirect-malformed-target", "6.1", "redirmacro.test", "1.2.3.4", "u@x.test",
     "permerror", None),
    ("exists-listed", "5.7", "exists.test", "1.2.3.4", "u@x.test", "pass", None),
    ("exists-not-listed", "5.7", "exists.test", "1.2.3.5", "u@x.test", "fail", None),
    ("ptr-validated", "5.5", "ptr.test", "1.2.3.4", "u@x.test", "pass", None),
    ("ptr-not-validated", "5.5", "ptrother.test", "1.2.3.4", "u@x.test", "fail",
     None),
    ("ptr-timeout-no-match", "5.5", "ptrslow.test", "5.5.5.5", "u@x.test", "fail",
     None),
    ("macro-l-o-d-h", "7.3", "macro.test", "1.2.3.4",
     "c-b-a@user.macro.test", "pass", None),
    ("macro-ipv6-nibbles", "7.3", "ip6.test", "2001:db8::1", "u@x.test", "pass",
     None),
    ("macro-p", "7.3", "pmacro.test", "1.2.3.4", "u@x.test", "pass", None),
    ("exp-text", "6.2", "expfail.test", "1.2.3.4", "u@expfail.test", "fail",
     "1.2.3.4 is not one of expfail.test's designated mail servers."),
    ("exp-escapes", "7.3", "escape.test", "1.2.3.4", "a+b@escape.test", "fail",
     "a%2Bb%40escape.test at 1.2.3.4 via in-addr: see mx.example.org% %20"),
    ("exp-c-r-t", "7.2", "stl.test", "1.2.3.4", "u@stl.test", "fail",
     "stl.test failed for u@stl.test at 1000 via mail.ece.example.edu"),
    ("exp-multiple-txt", "6.2", "expmulti.test", "1.2.3.4", "u@x.test", "fail",
     None),
    ("exp-syntax-error", "6.2", "expbad.test", "1.2.3.4", "u@x.test", "fail", None),
    ("exp-of-redirect-target", "6.2", "expredir.test", "1.2.3.4", "u@x.test",
     "fail", "1.2.3.4 is not one of expfail.test's designated mail servers."),
    ("ten-lookups-ok", "4.6.4", "chain0.test", "1.2.3.4", "u@x.test", "pass", None),
    ("eleven-lookups", "4.6.4", "chain11.test", "1.2.3.4", "u@x.test", "permerror",
     None),
    ("include-loop", "4.6.4", "loop.test", "1.2.3.4", "u@x.test", "permerror", None),
    ("void-two-ok", "4.6.4", "void2.test", "1.2.3.4", "u@x.test", "pass", None),
    ("void-three", "4.6.4", "void3.test", "1.2.3.4", "u@x.test", "permerror", None),
    ("void-mx", "4.6.4", "mxvoid.test", "1.2.3.4", "u@x.test", "permerror", None),
]


@pytest.fixture(scope="module")
def checker():
    return SpfChecker(Dns(ZONE))


@pytest.mark.parametrize("name, section, domain, ip, sender, expected, explanation",
                         SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_rfc7208_scenarios(checker, name, section, domain, ip, sender, expected,
                           explanation):
    result = checker.check_host(ip, domain, sender, "mx.example.org", now=1000.0)
    assert result.code.value == expected, (name, section, result.reason)
    assert result.explanation == explanation, name


def test_null_sender_checks_helo_identity(checker):
    result = checker.check("1.2.3.4", "", "a.test", now=0.0)
    assert (result.code, result.identity, result.sender, result.domain) == (
        SpfCode.PASS, "helo", "postmaster@a.test", "a.test")
    assert checker.check("1.2.3.5", "u@a.test", "x", now=0.0).code is SpfCode.FAIL


def test_exact_work_of_a_check_then_a_cached_check():
    checker = SpfChecker(Dns(ZONE))
    first = checker.check_host("10.0.0.2", "mx.test", "u@mx.test", "h.test", 0.0)
    assert first.code is SpfCode.PASS and first.mechanism == "mx"
    assert (first.dns_lookups, first.void_lookups) == (1, 0)
    # TXT mx.test, MX mx.test, A mx1, A mx2: four network queries
    assert first.work.cpu == {"spf.check": 1, "spf.record": 1, "spf.term": 1,
                              "dns.query": 4}
    assert first.work.net_round_trips == 4
    again = checker.check_host("10.0.0.2", "mx.test", "u@mx.test", "h.test", 10.0)
    assert again.work == Work(cpu={"spf.check": 1, "spf.record": 1, "spf.term": 1,
                                   "dns.cache_hit": 4})
    assert set(again.work.cpu) - {"dns.cache_hit"} <= set(CPU_UNITS)


def test_lookup_limit_is_a_setting():
    tight = SpfChecker(Dns(ZONE), SpfSettings(dns_mechanism_limit=3))
    assert tight.check_host("1.2.3.4", "chain7.test", "u@x.test", "h", 0.0).code \
        is SpfCode.PASS  # chain7 -> 8 -> 9 -> 10: three includes
    assert tight.check_host("1.2.3.4", "chain6.test", "u@x.test", "h", 0.0).code \
        is SpfCode.PERMERROR
    loose = SpfChecker(Dns(ZONE), SpfSettings(void_lookup_limit=3))
    assert loose.check_host("1.2.3.4", "void3.test", "u@x.test", "h", 0.0).code \
        is SpfCode.PASS


def test_permerror_counts_stop_at_the_limit():
    checker = SpfChecker(Dns(ZONE))
    result = checker.check_host("1.2.3.4", "lots0.test", "u@x.test", "h", 0.0)
    assert result.code is SpfCode.PERMERROR
    assert result.void_lookups == 3 and result.dns_lookups == 3
    assert result.reason == "more than 2 void lookups at 'a:x2.lots.test'"


def test_timeout_wait_is_reported():
    checker = SpfChecker(Dns(ZONE, DnsSettings(timeout_s=5.0, attempts=2)))
    result = checker.check_host("1.2.3.4", "txttimeout.test", "u@x.test", "h", 0.0)
    assert result.code is SpfCode.TEMPERROR and result.wait_s == 10.0
    assert result.work.net_round_trips == 2


def test_explanations_can_be_turned_off():
    checker = SpfChecker(Dns(ZONE), SpfSettings(explanations=False))
    result = checker.check_host("1.2.3.4", "expfail.test", "u@x.test", "h", 0.0)
    assert result.code is SpfCode.FAIL and result.explanation is None
    assert result.work.cpu["dns.query"] == 1  # no TXT lookup of the exp domain


def test_received_spf_header():
    checker = SpfChecker(Dns(ZONE))
    result = checker.check_host("192.0.2.1", "net.test", "me@net.test",
                                "foo.example.com", 0.0)
    assert received_spf_header(result, receiver="mybox.example.org") == (
        "Received-SPF: pass (mybox.example.org: domain of me@net.test designates "
        "192.0.2.1 as permitted sender) client-ip=192.0.2.1; "
        'envelope-from="me@net.test"; helo=foo.example.com; '
        'mechanism="ip4:192.0.2.0/24"; receiver=mybox.example.org; '
        "identity=mailfrom;")
    perm = checker.check_host("1.2.3.4", "two.test", "me@two.test", "h.test", 0.0)
    assert received_spf_header(perm, "r.test").startswith(
        "Received-SPF: permerror (r.test: two.test has 2 SPF records) ")
    assert 'problem="two.test has 2 SPF records"' in received_spf_header(perm)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="client ip 'nonsense'"):
        SpfChecker(Dns(ZONE)).check_host("nonsense", "a.test", "u@a.test", "h", 0.0)
    with pytest.raises(ValueError, match="dns_mechanism_limit=-1"):
        SpfSettings(dns_mechanism_limit=-1)
