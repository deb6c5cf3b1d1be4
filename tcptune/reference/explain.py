"""The reference behind ``tcptune explain``: topic files shipped in tcptune/topics/.

Each topic is a UTF-8 text file ``tcptune/topics/<kind>/<name>.txt``. It starts
with a header of ``key: value`` lines (title, summary, references separated by
";", aliases separated by ","), then one blank line, then the body. Files are
read when :func:`load_topics` is called; nothing is cached at module level.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable

from tcptune.model.record import record
from tcptune.model.sysctls import short_name

KINDS: tuple[str, ...] = ("state", "sysctl", "option", "concept", "finding")
FILE_KINDS: tuple[str, ...] = ("state", "sysctl", "option", "concept")  # finding: advisor
HEADER_KEYS: tuple[str, ...] = ("title", "summary", "references", "aliases")
SUMMARY_MAX = 70
BODY_WIDTH = 78
SCREEN_WIDTH = 80  # what format_topic wraps titles and references to
MAX_SUGGESTIONS = 5
_PROC_SYS = "/proc/sys/"


@record
class Topic:
    """One explain topic: a TCP state, a sysctl, a socket option, a concept or a finding."""

    name: str  # canonical, e.g. "close-wait", "net.ipv4.tcp_fin_timeout", "so_linger"
    kind: str  # "state" | "sysctl" | "option" | "concept" | "finding"
    title: str
    summary: str
    references: tuple[str, ...]
    aliases: tuple[str, ...]
    body: str


class TopicFormatError(ValueError):
    """A topic file does not follow the header-blank-line-body format."""


class UnknownTopic(LookupError):
    """No topic matches a query; ``suggestions`` holds up to five close names."""

    def __init__(self, name: str, suggestions: tuple[str, ...] = ()) -> None:
        self.name = name
        self.suggestions = suggestions
        message = f"no explain topic named {name!r}"
        if suggestions:
            message += f"; did you mean: {', '.join(suggestions)}?"
        super().__init__(message)


def parse_topic(text: str, *, name: str, kind: str) -> Topic:
    """Parse one topic file's text into a Topic, or raise TopicFormatError."""
    if kind not in KINDS:
        raise TopicFormatError(f"{name}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    head, separator, body = text.replace("\r\n", "\n").partition("\n\n")
    if not separator:
        raise TopicFormatError(f"{name}: no blank line between the header and the body")
    fields: dict[str, str] = {}
    for number, line in enumerate(head.split("\n"), start=1):
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or key not in HEADER_KEYS:
            raise TopicFormatError(
                f"{name}: header line {number} is not one of {', '.join(HEADER_KEYS)}: {line!r}"
            )
        if key in fields:
            raise TopicFormatError(f"{name}: header field {key!r} appears twice")
        fields[key] = value.strip()
    missing = [key for key in HEADER_KEYS if key not in fields]
    if missing:
        raise TopicFormatError(f"{name}: header is missing {', '.join(missing)}")
    for key in ("title", "summary"):
        if not fields[key]:
            raise TopicFormatError(f"{name}: {key} is empty")
    body = body.strip("\n")
    if not body.strip():
        raise TopicFormatError(f"{name}: the body is empty")
    return Topic(
        name=name,
        kind=kind,
        title=fields["title"],
        summary=fields["summary"],
        references=_split(fields["references"], ";"),
        aliases=_split(fields["aliases"], ","),
        body=body,
    )


def _split(value: str, separator: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(separator) if part.strip())


def lint_topic(topic: Topic) -> tuple[str, ...]:
    """Return style problems: summary length, body width, missing references."""
    problems: list[str] = []
    if len(topic.summary) > SUMMARY_MAX:
        problems.append(f"summary is {len(topic.summary)} characters (max {SUMMARY_MAX})")
    if not topic.references:
        problems.append("no references")
    for number, line in enumerate(topic.body.split("\n"), start=1):
        if len(line) > BODY_WIDTH:
            problems.append(f"body line {number} is {len(line)} columns (max {BODY_WIDTH})")
    return tuple(problems)


def _topic_files(root: Traversable) -> Iterator[tuple[str, str, Traversable]]:
    for kind in FILE_KINDS:
        directory = root / kind
        if not directory.is_dir():
            continue
        for entry in sorted(directory.iterdir(), key=lambda item: item.name):
            if entry.is_file() and entry.name.endswith(".txt"):
                yield kind, entry.name.removesuffix(".txt"), entry


def load_topics(extra: Iterable[Topic] = ()) -> dict[str, Topic]:
    """Read every shipped topic and add ``extra`` ones (the advisor's findings).

    Returns canonical name -> Topic. Raises TopicFormatError for a malformed file
    and ValueError when two topics share a canonical name.
    """
    topics: dict[str, Topic] = {}
    for kind, name, entry in _topic_files(files("tcptune.reference") / "topics"):
        topic = parse_topic(entry.read_text(encoding="utf-8"), name=name, kind=kind)
        _add(topics, topic)
    for topic in extra:
        if topic.kind not in KINDS:
            raise ValueError(f"topic {topic.name!r}: unknown kind {topic.kind!r}")
        _add(topics, topic)
    return topics


def _add(topics: dict[str, Topic], topic: Topic) -> None:
    if not topic.name:
        raise ValueError("a topic needs a name")
    if topic.name in topics:
        raise ValueError(
            f"two topics named {topic.name!r} ({topics[topic.name].kind} and {topic.kind})"
        )
    topics[topic.name] = topic


def normalize(query: str) -> str:
    """Return the lookup form of a name: lower case, "-" for "_", dots for "/"."""
    text = query.strip().lower()
    if text.startswith(_PROC_SYS):
        text = text[len(_PROC_SYS) :]
    text = text.replace("/", ".").replace("_", "-")
    return "-".join(text.split())


def _short_sysctl(name: str) -> str | None:
    short = short_name(name)
    return short if short != name else None


def _index(topics: Mapping[str, Topic]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Return (normalized canonical name -> name, normalized other key -> names)."""
    names = {normalize(name): name for name in topics}
    others: dict[str, list[str]] = {}
    for name, topic in topics.items():
        keys = [normalize(alias) for alias in topic.aliases]
        short = _short_sysctl(name) if topic.kind == "sysctl" else None
        if short:
            keys.append(normalize(short))
        for key in keys:
            targets = others.setdefault(key, [])
            if name not in targets:
                targets.append(name)
    return names, others


def find_topic(topics: Mapping[str, Topic], query: str) -> Topic:
    """Return the topic named or aliased by ``query``, or raise UnknownTopic.

    Matching ignores case, treats "_" and "-" alike, accepts sysctl paths
    (net/ipv4/tcp_fin_timeout, /proc/sys/...) and short sysctl names
    (tcp_fin_timeout for net.ipv4.tcp_fin_timeout).
    """
    key = normalize(query)
    names, others = _index(topics)
    if key in names:
        return topics[names[key]]
    targets = others.get(key, [])
    if len(targets) == 1:
        return topics[targets[0]]
    if targets:  # an alias shared by several topics: let the user choose
        raise UnknownTopic(query, tuple(sorted(targets))[:MAX_SUGGESTIONS])
    raise UnknownTopic(query, _suggest(key, names, others))


def _suggest(
    key: str, names: Mapping[str, str], others: Mapping[str, list[str]]
) -> tuple[str, ...]:
    candidates: dict[str, list[str]] = {norm: [name] for norm, name in names.items()}
    for norm, targets in others.items():
        known = candidates.setdefault(norm, [])
        known.extend(target for target in targets if target not in known)
    ranked: list[str] = []
    if len(key) >= 3:
        ranked += sorted((norm for norm in candidates if key in norm), key=lambda n: (len(n), n))
    ranked += difflib.get_close_matches(key, list(candidates), n=2 * MAX_SUGGESTIONS, cutoff=0.6)
    suggestions: list[str] = []
    for norm in ranked:
        for name in candidates[norm]:
            if name not in suggestions:
                suggestions.append(name)
    return tuple(suggestions[:MAX_SUGGESTIONS])


def format_topic(topic: Topic) -> str:
    """Return the topic as plain text in 80 columns: title, summary, body, sources."""
    import textwrap

    def wrap(text: str, first: str = "", rest: str = "") -> list[str]:
        return textwrap.wrap(
            text,
            SCREEN_WIDTH,
            initial_indent=first,
            subsequent_indent=rest,
            break_on_hyphens=False,  # keeps names like tcp_fin_timeout or RFC 9293 whole
        )

    title = wrap(topic.title, rest="  ")
    lines = [*title, "=" * min(max(len(line) for line in title), BODY_WIDTH), ""]
    lines += [*wrap(topic.summary), "", topic.body]
    if topic.references:
        lines += ["", "References:"]
        for reference in topic.references:
            lines += wrap(reference, "  - ", "    ")
    return "\n".join(lines) + "\n"


def with_findings(topics: Mapping[str, Topic], findings: Iterable[Topic]) -> dict[str, Topic]:
    """Return ``topics`` plus finding topics; a finding ID that names a topic extends it.

    A finding such as ``close-wait`` shares its name with the state it is about:
    the state topic then gains the finding's text instead of being shadowed.
    """
    merged = dict(topics)
    for finding in findings:
        existing = merged.get(finding.name)
        if existing is None:
            merged[finding.name] = finding
            continue
        body = f"{existing.body.rstrip()}\n\nAs a tcptune audit finding ({finding.name}):\n"
        body += finding.body
        references = existing.references + tuple(
            ref for ref in finding.references if ref not in existing.references
        )
        merged[finding.name] = Topic(
            existing.name,
            existing.kind,
            existing.title,
            existing.summary,
            references,
            existing.aliases,
            body,
        )
    return merged


def topic_list(topics: Mapping[str, Topic]) -> list[tuple[str, str, str]]:
    """Return (kind, name, summary) rows grouped by kind in KINDS order."""
    order = {kind: index for index, kind in enumerate(KINDS)}
    return [
        (t.kind, name, t.summary)
        for name, t in sorted(topics.items(), key=lambda item: (order[item[1].kind], item[0]))
    ]
