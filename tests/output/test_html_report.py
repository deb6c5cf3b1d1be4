"""audit --format html: one self-contained page, rendered by headless Chromium and checked there.

The report of a real lab (CLOSE_WAIT held by a process whose name is HTML, TIME_WAIT,
a listener, a profile with drift) is opened in Chromium: the DOM Chromium builds must
show the sections, the counts, the findings with remedies and sources, and the hostile
names as text, never as elements; the screenshot must be a real picture of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptune.cli import cli
from tests.conftest import FIXTURES
from tests.lab import SocketLab, require_tool

# A process name that is markup: comm holds up to 15 bytes (TASK_COMM_LEN 16).
EVIL = "<i>pwn</i>&'\""
HOLD = f"""
import ctypes, sys, time
ctypes.CDLL(None).prctl(15, {EVIL.encode()!r}, 0, 0, 0)  # PR_SET_NAME
print("ready", flush=True)
sys.stdin.read()
"""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """The elements, external references and visible text of a DOM."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.references: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("style", "title", "script"):
            self._skip += 1
        for name, value in attrs:
            if name in ("src", "href", "action", "xlink:href", "srcset", "poster"):
                self.references.append(f"{tag} {name}={value}")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile and no network services; return stdout."""
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    profile.mkdir()
    done = subprocess.run(
        [require_tool("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _report(tmp_path: Path, *options: str) -> Path:
    report = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli, [*options, "audit", "--format", "html", "--output", str(report)]
    )
    assert result.exit_code in (0, 1, 2, 3), result.stderr
    assert result.stdout == ""
    return report


@pytest.mark.kernel
def test_the_report_renders_in_chromium_with_every_system_string_as_text(
    lab: SocketLab, tmp_path: Path
) -> None:
    lab.listen()
    lab.established(2)
    conns = lab.close_wait(3)
    lab.time_wait(2)
    fds = [conn.server.fileno() for conn in conns if conn.server is not None]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        pass_fds=fds, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
    try:
        report = _report(tmp_path, "--debug")
        document = json.loads(CliRunner().invoke(cli, ["audit", "--json"]).stdout)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    source = report.read_text()
    assert "Content-Security-Policy" in source and "default-src 'none'" in source

    page = Page()
    page.feed(chromium(tmp_path, "--dump-dom", report.as_uri()))
    text = page.visible
    # No element came from a system string, and nothing is fetched from anywhere.
    assert "i" not in page.tags and "script" not in page.tags, page.tags
    assert page.references == []
    assert EVIL in text  # the process name, shown as the characters it is
    for section in ("Sockets per state", "Headroom", "CLOSE_WAIT owners", "Findings", "Settings"):
        assert section in text
    assert "CLOSE_WAIT 3" in text and "ESTABLISHED 4" in text and "LISTEN 1" in text
    assert "timewait sockets / tcp_max_tw_buckets" in text
    # Every finding with its evidence, remedy and sources, worst first.
    assert text.count("Remedy:") == len(document["findings"])
    for finding in document["findings"]:
        assert finding["title"] in text
        assert " ".join(finding["recommendation"].split()) in text
        for source_text in finding["references"]:
            assert " ".join(source_text.split()) in text
    assert "svg" in page.tags and page.tags.count("rect") >= 22  # the charts are drawn

    screenshot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1000,2400", report.as_uri())
    picture = screenshot.read_bytes()
    assert picture.startswith(PNG_SIGNATURE) and len(picture) > 20_000
    width, height = int.from_bytes(picture[16:20], "big"), int.from_bytes(picture[20:24], "big")
    assert (width, height) == (1000, 2400)
    shots = os.environ.get("TCPTUNE_REPORT_SCREENSHOT")  # to look at it: a path to copy it to
    if shots:
        Path(shots).write_bytes(picture)


def test_a_hostile_host_name_is_text_and_what_could_not_be_read_is_listed(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "proc"
    shutil.copytree(FIXTURES / "container-ns", tree, symlinks=True)
    (tree / "sys" / "kernel").mkdir(parents=True, exist_ok=True)
    (tree / "sys" / "kernel" / "hostname").write_text("<script>x</script>&\n")
    source = _report(tmp_path, "--proc-root", str(tree)).read_text()
    assert "&lt;script&gt;x&lt;/script&gt;&amp;" in source and "<script" not in source
    broken = _report(tmp_path, "--proc-root", str(FIXTURES / "broken")).read_text()
    assert "Incomplete inspection" in broken and "unknown TCP state code 0F" in broken
    assert "unknown host" in broken  # this tree has no sys/kernel/hostname
