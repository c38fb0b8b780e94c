"""The report in a real browser: headless Chromium renders every chart and table from file://
and the page asks for no network resource.

Two checks per page: the rendered DOM (``--dump-dom``) holds every ``data-section`` element of
``covertreex_bench.reports.SECTIONS`` with its SVG drawn or its table filled; and Chromium's net log
(``--log-net-log``) holds no URL request started by the page (requests whose network isolation
key is the file:// site). Host names resolve nowhere (``--host-resolver-rules``), so nothing
leaves the machine even if a request were made. A control page with an external image proves
that the net-log check sees page requests. Skipped when no Chromium binary is installed
(Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import assert_self_contained, parse_sections, write_fixtures  # noqa: E402

from covertreex_bench.reports import SECTIONS, build_report  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome",
            "headless_shell")


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


BROWSER = _browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium binary on PATH (tried " + ", ".join(BROWSERS)
    + "); install it with: apt-get install -y chromium")


def run_chromium(url: str, work: Path, tag: str) -> tuple[str, list[dict]]:
    """(rendered DOM, URL requests of the net log) of one headless page load."""
    netlog = work / f"{tag}-netlog.json"
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-default-apps", "--disable-extensions", "--mute-audio",
           f"--user-data-dir={work / (tag + '-profile')}",
           "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--log-net-log={netlog}", "--net-log-capture-mode=Default",
           "--virtual-time-budget=3000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout, url_requests(netlog)


def url_requests(netlog: Path) -> list[dict]:
    """URL_REQUEST_START_JOB events of a Chromium net log: {"url", "isolation", "site"}."""
    text = netlog.read_text(encoding="utf-8", errors="replace").strip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:
        # A log cut short at exit lacks its closing brackets.
        log = json.loads(text.rstrip(",\n") + "]}")
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    out = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if types.get(event.get("type")) == "URL_REQUEST_START_JOB" and "url" in params:
            out.append({"url": params["url"],
                        "isolation": params.get("network_isolation_key", ""),
                        "site": params.get("site_for_cookies", "")})
    return out


def page_requests(requests: list[dict]) -> list[str]:
    """Requests made by the file:// page (Chromium's own background fetches have another
    isolation key: they are not the page's doing, and resolve nowhere anyway)."""
    return [r["url"] for r in requests
            if "file://" in r["isolation"] or "site=file://" in r["site"]]


def _assert_rendered(dom: str) -> None:
    p = parse_sections(dom)
    missing = [s for s, _ in SECTIONS if s not in p.found]
    assert not missing, f"sections missing from the rendered page: {missing}"
    for section, kind in SECTIONS:
        info = p.found[section]
        assert not info["empty"], f"{section} rendered empty: {info['text'][:200]}"
        if kind == "chart":
            assert info["svg"] == 1 and info["svg_shapes"] > 3, f"chart {section} not drawn"
        else:
            assert info["tag"] == "table" and info["rows"] >= 2, f"table {section} has no rows"


def test_netlog_check_sees_page_requests(tmp_path):
    """Control: a page that loads an external image and stylesheet is caught."""
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="http://example.invalid/x.png">'
                    '<link rel="stylesheet" href="https://fonts.example.invalid/css"></body></html>')
    _, requests = run_chromium(page.as_uri(), tmp_path, "control")
    seen = page_requests(requests)
    assert any("example.invalid/x.png" in u for u in seen), requests
    assert any("fonts.example.invalid" in u for u in seen), requests


def test_report_renders_offline(tmp_path):
    fixtures = write_fixtures(tmp_path / "in")
    index = build_report(tmp_path / "report", **fixtures)
    html = index.read_text(encoding="utf-8")
    assert_self_contained(html)
    dom, requests = run_chromium(index.as_uri(), tmp_path, "report")
    _assert_rendered(dom)
    external = [u for u in page_requests(requests) if not u.startswith(("file:", "data:"))]
    assert not external, f"the report asked for network resources: {external}"
    # The copied pyinstrument pages load offline too.
    profile_pages = sorted((index.parent / "profiles").rglob("*.html"))
    assert profile_pages
    _, prequests = run_chromium(profile_pages[0].as_uri(), tmp_path, "profile")
    external = [u for u in page_requests(prequests) if not u.startswith(("file:", "data:"))]
    assert not external, f"the profile page asked for network resources: {external}"


def test_empty_report_renders(tmp_path):
    index = build_report(tmp_path / "report", asv=tmp_path / "none", gate=[tmp_path / "none"],
                         bench=[tmp_path / "none"], profiles=tmp_path / "none")
    dom, requests = run_chromium(index.as_uri(), tmp_path, "empty")
    p = parse_sections(dom)
    assert all(s in p.found for s, _ in SECTIONS)
    assert all(p.found[s]["text"].strip() for s, _ in SECTIONS)
    assert not [u for u in page_requests(requests) if not u.startswith(("file:", "data:"))]
