"""Hardware profiles: what a modelled host is made of, loaded from ``hardware/*.yaml``.

A profile names a host's CPU, memory, disk arrays and network link, and the cost
table that turns a stage's CPU work units into seconds on that CPU. It decides
nothing and counts nothing; the SimPy models in ``cpu``, ``disk``, ``array``,
``memory``, ``network`` and ``host`` read it.

Cost tables: ``hardware/costs/<stage>.yaml`` map a CPU unit kind
(``<stage>.<unit>``) to seconds per unit on the REFERENCE CPU, one core of the
Dell PowerEdge 1750's 3.2 GHz Xeon (DESIGN.md). A profile scales them by its
CPU's ``relative_speed`` (time on this CPU / time on the reference core) and may
override single kinds (``cpu.cost_overrides``, also in reference seconds, for
work whose speed ratio differs from the integer-benchmark ratio)::

    cost_s(kind) = (override or reference cost) * relative_speed

YAML keys (see ``hardware/dell-pe1750.yaml``): ``name``, ``description``,
``cpu`` {model, cores, threads_per_core, ht_gain, clock, relative_speed,
cost_overrides}, ``memory`` {ram, reserved}, ``disk_models`` {name: disk},
``arrays`` {name: {level, disks, disk (a mapping or a disk_models name),
stripe_unit, controller_cache}}, ``link`` {bandwidth, latency}. A disk is
{rpm, avg_seek, track_to_track, transfer, capacity}. Quantities are plain
numbers in base units (bytes, seconds, bytes/s, Hz) or strings with a unit:
``9GB`` (decimal, as disk makers count), ``64KiB``, ``4.7ms``, ``100Mbit/s``,
``60MB/s``, ``3.2GHz``, ``10000rpm``.

Raises ``ProfileError(path, line, key, message)`` for anything wrong in a
profile or cost file, and ``ValueError`` when the spec dataclasses are built in
code with values out of range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

HARDWARE_DIR = Path(__file__).resolve().parents[2] / "hardware"
"""The repository's ``hardware/`` folder, the default place to look for profiles."""

DEFAULT_SEARCH_PATH: tuple[Path, ...] = (HARDWARE_DIR,)

RAID_LEVELS = ("single", "raid1", "raid5", "raid10")


class ProfileError(Exception):
    """A bad hardware profile or cost file; the CLI prints ``FILE:LINE: key: message``.

    ``line`` is 1-based; 0 means the problem has no line (a missing file).
    """

    def __init__(self, path: str, line: int, key: str, message: str) -> None:
        super().__init__(path, line, key, message)
        self.path = str(path)
        self.line = int(line)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.key}: {self.message}"


# ---------------------------------------------------------------------------
# specs


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class CpuSpec:
    """Processors of a host, and how fast one core is against the reference core."""

    cores: int
    """Physical cores (sockets x cores per socket)."""
    clock_hz: float
    relative_speed: float
    """Time for a unit of work here / time on the reference core (PE1750 Xeon = 1.0)."""
    threads_per_core: int = 1
    """Hardware threads per core: 2 with Hyper-Threading."""
    ht_gain: float = 0.0
    """Fraction of a core that a core's second (and further) thread adds."""
    model: str = ""
    cost_overrides: Mapping[str, float] = field(default_factory=dict)
    """Unit kind -> seconds per unit on the reference core, replacing the table."""

    def __post_init__(self) -> None:
        _check(self.cores >= 1, f"cores(={self.cores}) must be >= 1")
        _check(
            self.threads_per_core >= 1,
            f"threads_per_core(={self.threads_per_core}) must be >= 1",
        )
        _check(
            0.0 <= self.ht_gain <= 1.0, f"ht_gain(={self.ht_gain}) must be in [0, 1]"
        )
        _check(
            self.threads_per_core > 1 or self.ht_gain == 0.0,
            f"ht_gain(={self.ht_gain}) needs threads_per_core > 1",
        )
        _check(self.clock_hz > 0, f"clock_hz(={self.clock_hz}) must be > 0")
        _check(
            math.isfinite(self.relative_speed) and self.relative_speed > 0,
            f"relative_speed(={self.relative_speed}) must be > 0",
        )
        for kind, cost in self.cost_overrides.items():
            _check(cost >= 0, f"cost override {kind}(={cost}) must be >= 0 s")
        object.__setattr__(
            self, "cost_overrides", MappingProxyType(dict(self.cost_overrides))
        )

    @property
    def threads(self) -> int:
        return self.cores * self.threads_per_core

    @property
    def saturation_cores(self) -> float:
        """Full-speed cores' worth of work done when every thread is busy.

        ``cores * (1 + ht_gain)`` with more than one thread per core, else ``cores``.
        """
        if self.threads_per_core == 1:
            return float(self.cores)
        return self.cores * (1.0 + self.ht_gain)


@dataclass(frozen=True, slots=True)
class DiskSpec:
    """One drive. ``rpm`` 0 means solid state: no rotational latency."""

    rpm: float
    avg_seek_s: float
    transfer_bytes_per_s: float
    capacity_bytes: int
    track_to_track_s: float = 0.0
    """Seek to the adjacent track, paid by a sequential I/O (0 if unknown)."""

    def __post_init__(self) -> None:
        _check(self.rpm >= 0, f"rpm(={self.rpm}) must be >= 0 (0 = solid state)")
        _check(self.avg_seek_s >= 0, f"avg_seek_s(={self.avg_seek_s}) must be >= 0")
        _check(
            self.track_to_track_s >= 0,
            f"track_to_track_s(={self.track_to_track_s}) must be >= 0",
        )
        _check(
            self.transfer_bytes_per_s > 0,
            f"transfer_bytes_per_s(={self.transfer_bytes_per_s}) must be > 0",
        )
        _check(
            self.capacity_bytes > 0,
            f"capacity_bytes(={self.capacity_bytes}) must be > 0",
        )

    @property
    def rotational_latency_s(self) -> float:
        """Half a revolution (FACTS.md: 7,200 rpm 4.17 ms, 10k 3.0 ms, 15k 2.0 ms)."""
        return 30.0 / self.rpm if self.rpm else 0.0


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """Disks under one RAID level; a controller write-back cache when > 0 bytes."""

    level: str
    disks: int
    disk: DiskSpec
    stripe_unit_bytes: int = 64 * 1024
    controller_cache_bytes: int = 0

    def __post_init__(self) -> None:
        _check(
            self.level in RAID_LEVELS,
            f"level(={self.level!r}) must be one of {', '.join(RAID_LEVELS)}",
        )
        minimum = {"single": 1, "raid1": 2, "raid5": 3, "raid10": 4}[self.level]
        _check(
            self.disks >= minimum,
            f"disks(={self.disks}) must be >= {minimum} for {self.level}",
        )
        _check(
            self.level != "single" or self.disks == 1,
            f"disks(={self.disks}) must be 1 for single",
        )
        _check(
            self.level != "raid10" or self.disks % 2 == 0,
            f"disks(={self.disks}) must be even for raid10",
        )
        _check(
            self.stripe_unit_bytes >= 512,
            f"stripe_unit_bytes(={self.stripe_unit_bytes}) must be >= 512",
        )
        _check(
            self.controller_cache_bytes >= 0,
            f"controller_cache_bytes(={self.controller_cache_bytes}) must be >= 0",
        )


@dataclass(frozen=True, slots=True)
class MemorySpec:
    """RAM, and what processes and the kernel hold; the rest is page cache."""

    ram_bytes: int
    reserved_bytes: int = 0

    def __post_init__(self) -> None:
        _check(self.ram_bytes > 0, f"ram_bytes(={self.ram_bytes}) must be > 0")
        _check(
            0 <= self.reserved_bytes < self.ram_bytes,
            f"reserved_bytes(={self.reserved_bytes}) must be in "
            f"[0, ram_bytes={self.ram_bytes})",
        )

    @property
    def page_cache_bytes(self) -> int:
        return self.ram_bytes - self.reserved_bytes


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """The host's network link; ``latency_s`` is one way."""

    bandwidth_bytes_per_s: float
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        _check(
            self.bandwidth_bytes_per_s > 0,
            f"bandwidth_bytes_per_s(={self.bandwidth_bytes_per_s}) must be > 0",
        )
        _check(self.latency_s >= 0, f"latency_s(={self.latency_s}) must be >= 0")


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    """A whole host: CPU, memory, named arrays, link and the CPU cost table."""

    name: str
    cpu: CpuSpec
    memory: MemorySpec
    arrays: Mapping[str, ArraySpec]
    link: LinkSpec
    description: str = ""
    reference_costs: Mapping[str, float] = field(default_factory=dict)
    """Unit kind -> seconds per unit on the reference core (hardware/costs/*.yaml)."""
    source: str = ""
    """The YAML file the profile came from ("" when built in code)."""

    def __post_init__(self) -> None:
        _check(bool(self.name), "name must not be empty")
        object.__setattr__(self, "arrays", MappingProxyType(dict(self.arrays)))
        object.__setattr__(
            self, "reference_costs", MappingProxyType(dict(self.reference_costs))
        )

    def cost_s(self, unit: str) -> float:
        """Seconds one *unit* of CPU work takes on one core of this host at full speed.

        Raises ``KeyError`` naming the unit and the cost file to add it to.
        """
        base = self.cpu.cost_overrides.get(unit)
        if base is None:
            base = self.reference_costs.get(unit)
            if base is None:
                stage = unit.split(".", 1)[0]
                raise KeyError(
                    f"no cost for cpu unit {unit!r}: add it to "
                    f"hardware/costs/{stage}.yaml (seconds per unit on the reference "
                    f"cpu) or to cpu.cost_overrides of profile {self.name}"
                )
        return base * self.cpu.relative_speed

    def with_costs(self, reference_costs: Mapping[str, float]) -> HardwareProfile:
        """The same profile with another reference cost table."""
        return replace(self, reference_costs=reference_costs)


# ---------------------------------------------------------------------------
# quantities

_NUMBER = re.compile(
    r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/]*)\s*$"
)
_KIB = 1024
_UNITS: dict[str, dict[str, float]] = {
    "bytes": {
        "": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
        "kib": _KIB, "mib": _KIB**2, "gib": _KIB**3, "tib": _KIB**4,
    },
    "seconds": {
        "": 1, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9,
        "min": 60, "h": 3600,
    },
    "bytes/s": {
        "": 1, "b/s": 1, "kb/s": 1e3, "mb/s": 1e6, "gb/s": 1e9,
        "kib/s": _KIB, "mib/s": _KIB**2, "gib/s": _KIB**3,
        "bit/s": 1 / 8, "kbit/s": 1e3 / 8, "mbit/s": 1e6 / 8, "gbit/s": 1e9 / 8,
    },
    "hz": {"": 1, "hz": 1, "khz": 1e3, "mhz": 1e6, "ghz": 1e9},
    "rpm": {"": 1, "rpm": 1},
    "number": {"": 1},
}  # fmt: skip


def parse_quantity(value: Any, kind: str) -> float:
    """A number in base units from *value*: a plain number or ``"<number><unit>"``.

    *kind* is one of ``bytes``, ``seconds``, ``bytes/s``, ``hz``, ``rpm``,
    ``number``. Raises ``ValueError`` naming the units allowed.
    """
    units = _UNITS[kind]
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind} quantity, found {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        match = _NUMBER.match(value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in units:
            allowed = ", ".join(u for u in units if u) or "none"
            raise ValueError(
                f"expected a {kind} quantity such as 12 or 12<unit> "
                f"(units: {allowed}), found {value!r}"
            )
        number = float(match.group(1)) * units[unit]
    else:
        raise ValueError(f"expected a {kind} quantity, found {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite {kind} quantity, found {value!r}")
    return number


# ---------------------------------------------------------------------------
# YAML with line numbers


class _Lines(dict):
    """A YAML mapping that remembers the line of itself and of each key."""

    line = 0
    lines: dict[Any, int]


# libyaml's parser where PyYAML has it (about 10 x faster; marks alike)
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Lines:
    loader.flatten_mapping(node)
    mapping = _Lines()
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in mapping:
            raise ProfileError(
                loader.name,
                line,
                str(key),
                f"duplicate key (first on line {mapping.lines[key]})",
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = line
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProfileError(str(path), 0, "", f"cannot read: {error.strerror}") from None
    loader = _LineLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 0
        raise ProfileError(str(path), line, "", f"bad YAML: {error.problem}") from None
    finally:
        loader.dispose()


_REQUIRED = object()


class _Section:
    """One mapping of a profile, read key by key, so that errors carry FILE:LINE."""

    def __init__(self, data: Any, path: str, prefix: str, line: int) -> None:
        if not isinstance(data, dict):
            raise ProfileError(path, line, prefix or "(top)", "expected a mapping")
        self.data = data
        self.path = path
        self.prefix = prefix
        self.line = line or getattr(data, "line", 0)
        self.used: set[str] = set()

    def key_name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def line_of(self, key: str) -> int:
        lines = getattr(self.data, "lines", {})
        return lines.get(key, self.line)

    def error(self, key: str, message: str) -> ProfileError:
        return ProfileError(self.path, self.line_of(key), self.key_name(key), message)

    def raw(self, key: str, default: Any = _REQUIRED) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ProfileError(
                    self.path, self.line, self.key_name(key), "missing required key"
                )
            return default
        return self.data[key]

    def quantity(self, key: str, kind: str, default: Any = _REQUIRED) -> float:
        value = self.raw(key, default)
        if value is default and default is not _REQUIRED:
            return default
        try:
            return parse_quantity(value, kind)
        except ValueError as error:
            raise self.error(key, str(error)) from None

    def integer(self, key: str, kind: str = "number", default: Any = _REQUIRED) -> int:
        number = self.quantity(key, kind, default)
        whole = round(number)
        if abs(number - whole) > 1e-9 * max(1.0, abs(number)):  # "0.3GB" is whole
            raise self.error(key, f"expected a whole number, found {number}")
        return int(whole)

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected text, found {value!r}")
        return value

    def section(self, key: str, default: Any = _REQUIRED) -> _Section:
        value = self.raw(key, default)
        return _Section(value, self.path, self.key_name(key), self.line_of(key))

    def finish(self, allowed: Iterable[str] | None = None) -> None:
        names = set(allowed) if allowed is not None else self.used
        for key in self.data:
            if key not in names:
                raise self.error(
                    str(key), f"unknown key; allowed: {', '.join(sorted(names))}"
                )


_FIELD = re.compile(r"^(\w+)\(=")
_FIELD_SUFFIXES = ("_bytes_per_s", "_bytes", "_hz", "_s")


def _build(section: _Section, key: str, make: Any) -> Any:
    """Call *make*; a ``ValueError`` becomes a ``ProfileError`` at the key at fault.

    Spec messages start with the field name (``reserved_bytes(=...)``); the YAML
    key is the field without its unit suffix (``reserved``).
    """
    try:
        return make()
    except ValueError as error:
        message = str(error)
        match = _FIELD.match(message)
        if match:
            field_name = match.group(1)
            for suffix in _FIELD_SUFFIXES:
                if field_name.endswith(suffix):
                    field_name = field_name[: -len(suffix)]
                    break
            if field_name in section.data:
                raise section.error(field_name, message) from None
        raise ProfileError(
            section.path, section.line, section.prefix or key, message
        ) from None


def _costs_from(section: _Section) -> dict[str, float]:
    costs = {}
    for kind in section.data:
        if not isinstance(kind, str) or "." not in kind:
            raise section.error(str(kind), "a cpu unit kind is named <stage>.<unit>")
        cost = section.quantity(kind, "seconds")
        if cost < 0:
            raise section.error(kind, f"cost(={cost}) must be >= 0 seconds per unit")
        costs[kind] = cost
    return costs


def _cpu(section: _Section) -> CpuSpec:
    overrides: dict[str, float] = {}
    if "cost_overrides" in section.data:
        overrides = _costs_from(section.section("cost_overrides"))
    spec = _build(
        section,
        "cpu",
        lambda: CpuSpec(
            model=section.text("model", ""),
            cores=section.integer("cores"),
            threads_per_core=section.integer("threads_per_core", default=1),
            ht_gain=section.quantity("ht_gain", "number", 0.0),
            clock_hz=section.quantity("clock", "hz"),
            relative_speed=section.quantity("relative_speed", "number"),
            cost_overrides=overrides,
        ),
    )
    section.finish()
    return spec


def _disk(section: _Section) -> DiskSpec:
    spec = _build(
        section,
        "disk",
        lambda: DiskSpec(
            rpm=section.quantity("rpm", "rpm"),
            avg_seek_s=section.quantity("avg_seek", "seconds"),
            track_to_track_s=section.quantity("track_to_track", "seconds", 0.0),
            transfer_bytes_per_s=section.quantity("transfer", "bytes/s"),
            capacity_bytes=section.integer("capacity", "bytes"),
        ),
    )
    section.finish()
    return spec


def _array(section: _Section, disk_models: Mapping[str, DiskSpec]) -> ArraySpec:
    disk_value = section.raw("disk")
    if isinstance(disk_value, str):
        if disk_value not in disk_models:
            known = ", ".join(sorted(disk_models)) or "none defined"
            raise section.error(
                "disk", f"unknown disk model {disk_value!r} (disk_models: {known})"
            )
        disk = disk_models[disk_value]
    else:
        disk = _disk(section.section("disk"))
    spec = _build(
        section,
        "array",
        lambda: ArraySpec(
            level=section.text("level"),
            disks=section.integer("disks"),
            disk=disk,
            stripe_unit_bytes=section.integer("stripe_unit", "bytes", 64 * 1024),
            controller_cache_bytes=section.integer("controller_cache", "bytes", 0),
        ),
    )
    section.finish()
    return spec


def profile_from_mapping(
    data: Any,
    path: str = "<profile>",
    default_name: str = "",
    reference_costs: Mapping[str, float] | None = None,
) -> HardwareProfile:
    """A profile from an already-parsed YAML mapping (see ``load_profile``)."""
    top = _Section(data, path, "", 1)
    name = top.text("name", default_name)
    description = top.text("description", "")
    cpu = _cpu(top.section("cpu"))
    memory_section = top.section("memory")
    memory = _build(
        memory_section,
        "memory",
        lambda: MemorySpec(
            ram_bytes=memory_section.integer("ram", "bytes"),
            reserved_bytes=memory_section.integer("reserved", "bytes", 0),
        ),
    )
    memory_section.finish()
    disk_models: dict[str, DiskSpec] = {}
    if "disk_models" in top.data:
        models = top.section("disk_models")
        for model in models.data:
            disk_models[str(model)] = _disk(models.section(model))
    arrays_section = top.section("arrays")
    arrays = {
        str(array_name): _array(arrays_section.section(array_name), disk_models)
        for array_name in arrays_section.data
    }
    if not arrays:
        raise top.error("arrays", "a host needs at least one array")
    link_section = top.section("link")
    link = _build(
        link_section,
        "link",
        lambda: LinkSpec(
            bandwidth_bytes_per_s=link_section.quantity("bandwidth", "bytes/s"),
            latency_s=link_section.quantity("latency", "seconds", 0.0),
        ),
    )
    link_section.finish()
    top.finish()
    return _build(
        top,
        "name",
        lambda: HardwareProfile(
            name=name,
            description=description,
            cpu=cpu,
            memory=memory,
            arrays=arrays,
            link=link,
            reference_costs=reference_costs or {},
            source=path,
        ),
    )


def find_profile(
    name_or_path: str | Path, search_path: Iterable[str | Path] = DEFAULT_SEARCH_PATH
) -> Path:
    """The YAML file for a profile name (``dell-pe1750``) or a path to one."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or len(candidate.parts) > 1:
        if candidate.is_file():
            return candidate
        raise ProfileError(str(candidate), 0, "hardware", "no such profile file")
    folders = [Path(folder) for folder in search_path]
    for folder in folders:
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name_or_path}{suffix}"
            if path.is_file():
                return path
    searched = ", ".join(str(folder) for folder in folders) or "nowhere"
    raise ProfileError(
        str(name_or_path),
        0,
        "hardware",
        f"no hardware profile of that name in {searched}",
    )


def load_profile(
    name_or_path: str | Path,
    search_path: Iterable[str | Path] = DEFAULT_SEARCH_PATH,
    costs_dir: str | Path | None = None,
) -> HardwareProfile:
    """Load a profile by name or path, with the reference costs of *costs_dir*.

    *costs_dir* defaults to the ``costs`` folder beside the profile file (no
    costs when it does not exist).
    """
    path = find_profile(name_or_path, search_path)
    if costs_dir is None:
        costs_dir = path.parent / "costs"
    costs = reference_costs(costs_dir) if Path(costs_dir).is_dir() else {}
    return profile_from_mapping(_load_yaml(path), str(path), path.stem, costs)


def reference_costs(costs_dir: str | Path) -> dict[str, float]:
    """Merge ``<costs_dir>/*.yaml`` into one table: unit kind -> reference seconds.

    Files are read in name order; a kind defined in two files is an error naming
    both. README.md and other non-YAML files are skipped.
    """
    folder = Path(costs_dir)
    if not folder.is_dir():
        raise ProfileError(str(folder), 0, "costs", "no such cost folder")
    merged: dict[str, float] = {}
    origin: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        data = _load_yaml(path)
        if data is None:
            continue
        section = _Section(data, str(path), "", 1)
        for kind, cost in _costs_from(section).items():
            if kind in merged:
                raise section.error(kind, f"already defined in {origin[kind]}")
            merged[kind] = cost
            origin[kind] = path.name
    return merged
