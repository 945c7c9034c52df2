"""Hardware profiles: quantities, shipped YAML, errors with FILE:LINE, cost tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twin.hardware.profile import (
    HARDWARE_DIR,
    ArraySpec,
    CpuSpec,
    DiskSpec,
    HardwareProfile,
    LinkSpec,
    MemorySpec,
    ProfileError,
    load_profile,
    parse_quantity,
    reference_costs,
)

SHIPPED = ("sun-ue450", "dell-pe1750", "modern-server", "openbsd-gateway")

MINIMAL = """\
name: tiny
cpu:
  cores: 2
  clock: 1GHz
  relative_speed: 2.0
memory:
  ram: 1GiB
  reserved: 256MiB
arrays:
  data:
    level: raid5
    disks: 4
    disk: {rpm: 7200, avg_seek: 8ms, transfer: 50MB/s, capacity: 100GB}
link:
  bandwidth: 100Mbit/s
  latency: 0.5ms
"""


def write(tmp_path: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("9GB", "bytes", 9e9),
        ("9.1 GB", "bytes", 9.1e9),
        ("0.3GB", "bytes", 3e8),
        ("64KiB", "bytes", 65536),
        ("2GiB", "bytes", 2 * 1024**3),
        (4096, "bytes", 4096),
        ("4.7ms", "seconds", 0.0047),
        ("20us", "seconds", 20e-6),
        ("1e-5", "seconds", 1e-5),
        ("100Mbit/s", "bytes/s", 12.5e6),
        ("1Gbit/s", "bytes/s", 125e6),
        ("60MB/s", "bytes/s", 60e6),
        ("3.2GHz", "hz", 3.2e9),
        ("300MHz", "hz", 300e6),
        ("10000rpm", "rpm", 10000),
        (7200, "rpm", 7200),
    ],
)
def test_parse_quantity(value, kind, expected):
    assert parse_quantity(value, kind) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "kind"),
    [("9 parsecs", "bytes"), ("fast", "seconds"), (True, "number"), ([1], "bytes")],
)
def test_parse_quantity_rejects(value, kind):
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(value, kind)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.source.endswith(f"{name}.yaml")
    assert profile.memory.page_cache_bytes > 0
    assert profile.arrays


@pytest.mark.parametrize("name", SHIPPED)
def test_every_constant_in_a_shipped_profile_has_a_comment(name):
    text = (HARDWARE_DIR / f"{name}.yaml").read_text()
    for number, line in enumerate(text.splitlines(), 1):
        match = re.match(r"^\s*([a-z_]+): (?!>)(\S.*)$", line)
        if match and match.group(1) not in ("name", "model"):
            assert "#" in line, f"{name}.yaml:{number}: constant without a source"


def test_dell_matches_the_seed():
    dell = load_profile("dell-pe1750")
    assert dell.cpu.cores == 2
    assert dell.cpu.threads == 4
    assert dell.cpu.relative_speed == 1.0
    assert dell.cpu.clock_hz == 3.2e9
    assert dell.memory.ram_bytes == 4 * 1024**3
    system, users = dell.arrays["system"], dell.arrays["users"]
    assert (system.level, system.disks, system.disk.capacity_bytes) == (
        "raid1",
        2,
        36e9,
    )
    assert (users.level, users.disks, users.disk.capacity_bytes) == ("raid5", 14, 73e9)
    assert users.stripe_unit_bytes == 64 * 1024
    assert users.controller_cache_bytes == 128 * 1024**2
    assert users.disk.rotational_latency_s == pytest.approx(3.0e-3)  # FACTS.md


def test_sun_matches_the_seed():
    sun = load_profile("sun-ue450")
    assert (sun.cpu.cores, sun.cpu.threads, sun.cpu.clock_hz) == (4, 4, 300e6)
    assert sun.cpu.relative_speed == 12.5
    assert sun.memory.ram_bytes == 2 * 1024**3
    assert sum(array.disks for array in sun.arrays.values()) == 10
    assert all(array.disk.capacity_bytes == 9.1e9 for array in sun.arrays.values())
    assert all(array.controller_cache_bytes == 0 for array in sun.arrays.values())
    assert sun.arrays["users"].disk.rotational_latency_s == pytest.approx(
        4.1667e-3, 1e-4
    )


def test_minimal_profile(tmp_path):
    profile = load_profile(write(tmp_path, MINIMAL))
    assert profile.cpu == CpuSpec(cores=2, clock_hz=1e9, relative_speed=2.0)
    assert profile.memory == MemorySpec(ram_bytes=1024**3, reserved_bytes=256 * 1024**2)
    assert profile.arrays["data"] == ArraySpec(
        level="raid5",
        disks=4,
        disk=DiskSpec(
            rpm=7200, avg_seek_s=0.008, transfer_bytes_per_s=50e6, capacity_bytes=10**11
        ),
    )
    assert profile.link == LinkSpec(bandwidth_bytes_per_s=12.5e6, latency_s=0.0005)
    assert profile.reference_costs == {}  # no costs/ folder beside it


def test_decimal_quantities_are_whole_bytes(tmp_path):
    profile = load_profile(write(tmp_path, MINIMAL.replace("100GB", "0.3GB")))
    assert profile.arrays["data"].disk.capacity_bytes == 300_000_000


def test_load_by_name_from_a_search_path(tmp_path):
    write(tmp_path, MINIMAL)
    assert load_profile("tiny", search_path=[tmp_path]).name == "tiny"
    with pytest.raises(ProfileError) as caught:
        load_profile("absent", search_path=[tmp_path])
    assert caught.value.key == "hardware"
    assert "absent" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "message"),
    [
        ("clock: 1GHz", "clock: 1 fortnight", 4, "cpu.clock", "hz quantity"),
        ("  cores: 2\n", "  cores: 2\n  sockets: 2\n", 4, "cpu.sockets", "unknown key"),
        ("  relative_speed: 2.0\n", "", 2, "cpu.relative_speed", "missing"),
        ("level: raid5", "level: raid6", 11, "arrays.data.level", "level"),
        ("disks: 4", "disks: 2", 12, "arrays.data.disks", "disks(=2) must be >= 3"),
        ("reserved: 256MiB", "reserved: 2GiB", 8, "memory.reserved", "reserved_bytes"),
        ("rpm: 7200", "rpm: -7200", 13, "arrays.data.disk.rpm", "rpm(=-7200.0)"),
        ("cores: 2", "cores: 2.5", 3, "cpu.cores", "whole number"),
        (
            "latency: 0.5ms",
            "latency: 0.5ms\n  latency: 1ms",
            17,
            "latency",
            "duplicate",
        ),
        ("  cores: 2\n", "  cores: [2\n", 4, "", "bad YAML"),
    ],
)
def test_errors_carry_file_line_and_key(tmp_path, old, new, line, key, message):
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    error = caught.value
    assert (error.path, error.line, error.key) == (str(path), line, key)
    assert message in error.message
    assert str(error) == f"{path}:{line}: {key}: {error.message}"


def test_disk_models_are_shared_by_name(tmp_path):
    text = MINIMAL.replace(
        "    disk: {rpm: 7200, avg_seek: 8ms, transfer: 50MB/s, capacity: 100GB}",
        "    disk: big",
    ).replace(
        "arrays:",
        "disk_models:\n  big: {rpm: 15000, avg_seek: 3.6ms, transfer: 75MB/s, "
        "capacity: 146GB}\narrays:",
    )
    profile = load_profile(write(tmp_path, text))
    assert profile.arrays["data"].disk.rpm == 15000
    path = write(tmp_path, text.replace("disk: big", "disk: small"), "bad.yaml")
    with pytest.raises(ProfileError, match="unknown disk model 'small'"):
        load_profile(path)


def test_reference_costs_merge_and_scale(tmp_path):
    costs = tmp_path / "costs"
    costs.mkdir()
    (costs / "smtp.yaml").write_text("smtp.command: 2.0e-5  # x\nsmtp.byte: 4ns\n")
    (costs / "spam.yaml").write_text("spam.rule: 1.0e-6\n")
    (costs / "README.md").write_text("not: yaml: at all: [\n")
    (costs / "empty.yaml").write_text("")
    table = reference_costs(costs)
    assert table == {"smtp.command": 2.0e-5, "smtp.byte": 4e-9, "spam.rule": 1e-6}
    profile = load_profile(write(tmp_path, MINIMAL))  # costs/ beside it
    assert profile.reference_costs == table
    assert profile.cost_s("smtp.command") == pytest.approx(4.0e-5)  # x relative 2.0
    with pytest.raises(KeyError, match=r"hardware/costs/imap\.yaml"):
        profile.cost_s("imap.command")


def test_cost_overrides_replace_the_table(tmp_path):
    text = MINIMAL.replace(
        "  relative_speed: 2.0\n",
        "  relative_speed: 2.0\n  cost_overrides:\n    smtp.command: 1.0e-4\n",
    )
    empty = tmp_path / "no-costs"
    empty.mkdir()
    profile = load_profile(write(tmp_path, text), costs_dir=empty)
    table = profile.with_costs({"smtp.command": 2.0e-5, "smtp.byte": 1e-9})
    assert table.cost_s("smtp.command") == pytest.approx(2.0e-4)
    assert table.cost_s("smtp.byte") == pytest.approx(2e-9)


def test_duplicate_and_bad_costs(tmp_path):
    (tmp_path / "a.yaml").write_text("smtp.command: 1.0e-5\n")
    (tmp_path / "b.yaml").write_text("\nsmtp.command: 2.0e-5\n")
    with pytest.raises(ProfileError) as caught:
        reference_costs(tmp_path)
    assert (caught.value.line, caught.value.key) == (2, "smtp.command")
    assert "a.yaml" in caught.value.message
    (tmp_path / "b.yaml").write_text("smtp.byte: -1\n")
    with pytest.raises(ProfileError, match=">= 0"):
        reference_costs(tmp_path)
    (tmp_path / "b.yaml").write_text("command: 1\n")
    with pytest.raises(ProfileError, match="<stage>.<unit>"):
        reference_costs(tmp_path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CpuSpec(cores=0, clock_hz=1e9, relative_speed=1), "cores"),
        (
            lambda: CpuSpec(cores=1, clock_hz=1e9, relative_speed=1, ht_gain=0.2),
            "threads_per_core",
        ),
        (lambda: CpuSpec(cores=1, clock_hz=1e9, relative_speed=0), "relative_speed"),
        (
            lambda: DiskSpec(
                rpm=-1, avg_seek_s=0, transfer_bytes_per_s=1, capacity_bytes=1
            ),
            "rpm",
        ),
        (lambda: MemorySpec(ram_bytes=10, reserved_bytes=10), "reserved_bytes"),
        (lambda: LinkSpec(bandwidth_bytes_per_s=0), "bandwidth"),
    ],
)
def test_specs_reject_bad_values(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_array_spec_levels():
    disk = DiskSpec(
        rpm=0, avg_seek_s=1e-4, transfer_bytes_per_s=1e9, capacity_bytes=10**9
    )
    assert ArraySpec("single", 1, disk).stripe_unit_bytes == 64 * 1024
    for level, disks in (("single", 2), ("raid1", 1), ("raid5", 2), ("raid10", 5)):
        with pytest.raises(ValueError, match="disks"):
            ArraySpec(level, disks, disk)


def test_profile_is_frozen():
    dell = load_profile("dell-pe1750")
    assert isinstance(dell, HardwareProfile)
    with pytest.raises(AttributeError):
        dell.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        dell.arrays["new"] = dell.arrays["users"]  # type: ignore[index]
