"""The modelled DNS: zone data, answers, TTL caching, timeouts, exact work."""

import pytest

from twin.stages.dns import (
    Dns,
    DnsSettings,
    Rcode,
    ZoneData,
    parse_zone,
    read_zone_file,
    reverse_name,
)
from twin.stages.work import Work

ZONES = {
    "example.com": {"A": ["192.0.2.1"], "MX": ["20 mx2.example.com", (10, "mx1")],
                    "TXT": ["v=spf1 mx -all", ("part one ", "part two")],
                    "ttl": 300},
    "a.b.example.com": {"AAAA": "2001:db8::1"},
    "slow.example.net": {"timeout": ["TXT"]},
    "dead.example.net": {"timeout": True},
    "1.2.0.192.in-addr.arpa": {"PTR": ["host.example.com."]},
}


def test_answers_noerror_nodata_nxdomain_and_empty_non_terminals():
    dns = Dns(ZONES)
    answer = dns.query("EXAMPLE.com.", "A", now=0.0)
    assert (answer.rcode, answer.records, answer.ttl) == (Rcode.NOERROR,
                                                          ("192.0.2.1",), 300)
    assert dns.query("example.com", "MX", 0.0).records == ((20, "mx2.example.com"),
                                                          (10, "mx1"))
    assert dns.query("example.com", "TXT", 0.0).records == (
        "v=spf1 mx -all", "part one part two")
    nodata = dns.query("example.com", "AAAA", 0.0)
    assert (nodata.rcode, nodata.records, nodata.is_void) == (Rcode.NOERROR, (), True)
    assert dns.query("b.example.com", "A", 0.0).rcode is Rcode.NOERROR
    nx = dns.query("nosuch.example.com", "A", 0.0)
    assert (nx.rcode, nx.is_void, nx.ttl) == (Rcode.NXDOMAIN, True, 3600)
    assert dns.query(reverse_name("192.0.2.1"), "PTR", 0.0).records == (
        "host.example.com",)


def test_exact_work_of_a_miss_and_a_hit():
    dns = Dns(ZONES)
    miss = dns.query("example.com", "A", now=0.0)
    # 12-byte header + 13-byte name + 4 for the question, twice (query and
    # answer), plus one A record: 13-byte name + 10 + 4 bytes of address
    assert miss.work == Work(cpu={"dns.query": 1}, net_bytes=2 * 29 + 27,
                             net_round_trips=1)
    hit = dns.query("example.com", "A", now=100.0)
    assert hit.from_cache and hit.ttl == 200
    assert hit.work == Work(cpu={"dns.cache_hit": 1})


def test_ttl_expiry_and_negative_caching():
    dns = Dns(ZONES, DnsSettings(negative_ttl_s=60))
    assert not dns.query("example.com", "A", 0.0).from_cache
    assert dns.query("example.com", "A", 299.9).from_cache
    assert not dns.query("example.com", "A", 300.0).from_cache
    assert not dns.query("nosuch.example.com", "A", 0.0).from_cache
    cached = dns.query("nosuch.example.com", "A", 59.0)
    assert cached.from_cache and cached.rcode is Rcode.NXDOMAIN
    assert not dns.query("nosuch.example.com", "A", 60.0).from_cache
    uncached = Dns(ZONES, DnsSettings(cache_enabled=False))
    uncached.query("example.com", "A", 0.0)
    assert uncached.query("example.com", "A", 1.0).work.net_round_trips == 1
    assert uncached.cached_entries == 0


def test_timeouts_are_per_type_not_cached_and_report_the_wait():
    dns = Dns(ZONES, DnsSettings(timeout_s=3.0, attempts=3))
    slow = dns.query("slow.example.net", "TXT", 0.0)
    assert (slow.rcode, slow.wait_s, slow.is_void) == (Rcode.TIMEOUT, 9.0, False)
    assert slow.work.net_round_trips == 3 and slow.work.cpu == {"dns.query": 3}
    assert dns.query("slow.example.net", "TXT", 1.0).rcode is Rcode.TIMEOUT
    assert dns.query("slow.example.net", "A", 0.0).rcode is Rcode.NOERROR
    assert dns.query("dead.example.net", "MX", 0.0).rcode is Rcode.TIMEOUT


def test_mx_hosts_sorted_and_implicit_mx():
    dns = Dns(ZONES)
    hosts, rcode, work = dns.mx_hosts("example.com", 0.0)
    assert hosts == ("mx1", "mx2.example.com") and rcode is Rcode.NOERROR
    assert work.net_round_trips == 1
    assert dns.mx_hosts("a.b.example.com", 0.0)[0] == ("a.b.example.com",)
    assert dns.mx_hosts("nosuch.example.org", 0.0)[:2] == ((), Rcode.NXDOMAIN)


ZONE_FILE = """\
$ORIGIN example.org.
$TTL 600
@        IN  A     198.51.100.1
         IN  MX    10 mail        ; relative to the origin
mail 60  IN  A     198.51.100.2
@            TXT   "v=spf1 " "a mx -all"
quoted       TXT   "say \\"hi\\"; ok"
slow         TIMEOUT A
v6.other.net. AAAA 2001:db8::2
"""


def test_zone_file(tmp_path):
    path = tmp_path / "example.org.zone"
    path.write_text(ZONE_FILE)
    dns = Dns(read_zone_file(str(path)))
    assert dns.query("example.org", "A", 0.0).ttl == 600
    assert dns.query("example.org", "MX", 0.0).records == ((10, "mail.example.org"),)
    mail = dns.query("mail.example.org", "A", 0.0)
    assert (mail.records, mail.ttl) == (("198.51.100.2",), 60)
    assert dns.query("example.org", "TXT", 0.0).records == ("v=spf1 a mx -all",)
    assert dns.query("quoted.example.org", "TXT", 0.0).records == ('say "hi"; ok',)
    assert dns.query("slow.example.org", "A", 0.0).rcode is Rcode.TIMEOUT
    assert dns.query("v6.other.net", "AAAA", 0.0).records == ("2001:db8::2",)


@pytest.mark.parametrize("text, message", [
    ("@ IN A 1.2.3", r"z:1: A record of 'x': '1.2.3' is not an address"),
    ("@ IN A 2001:db8::1", "is IPv6"),
    ("@ IN CNAME other", "record type 'CNAME'"),
    ("@ IN MX mail", "MX takes a preference and a host"),
    ('@ TXT "open', "unterminated quoted string"),
    ("  IN A 1.2.3.4", "without an owner"),
])
def test_zone_file_errors_name_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        parse_zone(text, origin="x", source="z")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="attempts=0"):
        DnsSettings(attempts=0)
    with pytest.raises(ValueError, match="timeout_s"):
        DnsSettings(timeout_s=0)
    with pytest.raises(ValueError, match="query type 'SRV'"):
        Dns(ZONES).query("example.com", "SRV", 0.0)
    with pytest.raises(ValueError, match="MX preference 70000"):
        ZoneData.from_mapping({"x.org": {"MX": ["70000 mx.x.org"]}})
