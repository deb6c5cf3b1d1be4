"""Parse the kernel's socket and TCP counter tables by name, never by column position.

Formats: /proc/net/sockstat{,6} (net/ipv4/proc.c sockstat_seq_show), and the
header-line/value-line pairs of /proc/net/snmp and /proc/net/netstat
(net/ipv4/proc.c snmp_seq_show, netstat_seq_show).
"""

from __future__ import annotations

from tcptune.inspect.procfs import ProcFS, ProcReadError
from tcptune.model.snapshot import Counters, Problem


def parse_sockstat(text: str, source: str) -> dict[str, dict[str, int]]:
    """Return ``{"TCP": {"inuse": 5, "orphan": 0, ...}, ...}`` from sockstat text."""
    tables: dict[str, dict[str, int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        protocol, sep, rest = line.partition(":")
        if not sep:
            raise ProcReadError(source, f"line {number}: no 'PROTO:' prefix: {line[:80]!r}")
        words = rest.split()
        if len(words) % 2:
            raise ProcReadError(source, f"line {number}: odd name/value list: {line[:80]!r}")
        try:
            tables[protocol.strip()] = {
                words[i]: _number(words[i + 1]) for i in range(0, len(words), 2)
            }
        except ValueError as exc:
            raise ProcReadError(source, f"line {number}: {exc}: {line[:80]!r}") from exc
    return tables


MAX_DIGITS = 20  # a 64-bit counter has at most 20 digits


def _number(field: str) -> int:
    """Return a counter field as an int; refuse absurd lengths before int() does, in our words."""
    if len(field.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a value of {len(field)} characters is no 64-bit counter")
    return int(field)


# Tcp MaxConn is the one signed field (-1: no limit; net/ipv4/proc.c snmp_seq_show_tcp_udp()
# prints it with %ld); every other counter and sockstat value is a count, never negative.
SIGNED = frozenset({"MaxConn"})


def _drop_negative(table: dict[str, int], path: str, problems: list[Problem]) -> None:
    for key, value in list(table.items()):
        if value < 0 and key not in SIGNED:
            problems.append(Problem(path, f"{key} is {value}: a count is never negative"))
            del table[key]


def parse_header_pairs(text: str, source: str) -> dict[str, dict[str, int]]:
    """Return ``{"Tcp": {"CurrEstab": 3, ...}, ...}`` from snmp/netstat header-value pairs."""
    tables: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    if len(lines) % 2:
        raise ProcReadError(source, f"{len(lines)} lines: a header without its values")
    for index in range(0, len(lines), 2):
        header, values = lines[index], lines[index + 1]
        name, _, names = header.partition(":")
        value_name, _, numbers = values.partition(":")
        if name != value_name:
            raise ProcReadError(
                source, f"line {index + 2}: values for {value_name!r} follow header {name!r}"
            )
        keys, fields = names.split(), numbers.split()
        if len(keys) != len(fields):
            raise ProcReadError(
                source,
                f"line {index + 2}: {name} has {len(keys)} names but {len(fields)} values",
            )
        try:
            tables[name] = {key: _number(f) for key, f in zip(keys, fields, strict=True)}
        except ValueError as exc:
            raise ProcReadError(source, f"line {index + 2}: {exc}") from exc
    return tables


def read_counters(procfs: ProcFS, problems: list[Problem]) -> Counters:
    """Read sockstat, sockstat6, snmp Tcp and netstat TcpExt; report what fails."""
    sockstat: dict[str, dict[str, int]] = {}
    tcp: dict[str, int] = {}
    tcp_ext: dict[str, int] = {}
    for relative in ("net/sockstat", "net/sockstat6"):
        try:
            parsed = parse_sockstat(procfs.read_text(relative), str(procfs.path(relative)))
        except ProcReadError as exc:
            problems.append(Problem(exc.path, exc.reason))
            continue
        for values in parsed.values():
            _drop_negative(values, str(procfs.path(relative)), problems)
        sockstat.update(parsed)
    for relative, table, target in (("net/snmp", "Tcp", tcp), ("net/netstat", "TcpExt", tcp_ext)):
        path = str(procfs.path(relative))
        try:
            parsed = parse_header_pairs(procfs.read_text(relative), path)
        except ProcReadError as exc:
            problems.append(Problem(exc.path, exc.reason))
            continue
        if table not in parsed:
            problems.append(Problem(path, f"no {table} table"))
            continue
        _drop_negative(parsed[table], path, problems)
        target.update(parsed[table])
    return Counters(sockstat=sockstat, tcp=tcp, tcp_ext=tcp_ext)
