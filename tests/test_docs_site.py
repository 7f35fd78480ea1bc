"""The documentation site, checked as a reader would see it.

One Sphinx build (warnings are errors, ``--keep-going``, nitpicky cross-references; the
tutorials execute and make their figures), then static checks of the generated pages
(every public name and every CLI option is documented), then every page opened in
headless Chromium over a local HTTP server: math typeset by the locally served MathJax
(no raw TeX left, no TeX errors), every image loaded, every internal link and anchor
resolving, no request leaving the machine, no JavaScript error.

Skipped, saying why, only where Sphinx and the ``docs`` extra are not installed
(``pip install -e ".[docs]"``) or where no Chromium binary is found (``apt-get install
chromium``; or set ``TABULARPG_CHROMIUM`` to a Chromium/Chrome executable).
"""
from __future__ import annotations

import functools
import http.server
import importlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILD_TIMEOUT = 300  # seconds; the site builds in well under a minute on 2 cores
DOCS_MODULES = ("sphinx", "myst_parser", "sphinx_gallery", "mathjax", "matplotlib")


def _missing_docs_modules() -> list[str]:
    missing = []
    for name in DOCS_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def chromium_path() -> str | None:
    """The Chromium executable: ``$TABULARPG_CHROMIUM``, else Debian's, else on PATH."""
    env = os.environ.get("TABULARPG_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for cand in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if os.access(cand, os.X_OK):
            return cand
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site once per test session; returns the HTML output directory."""
    missing = _missing_docs_modules()
    if missing:
        pytest.skip(f"the documentation build needs the 'docs' extra (missing: {', '.join(missing)}); "
                    "install it with: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("docs") / "html"
    doctrees = out.parent / "doctrees"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
           "-d", str(doctrees), str(DOCS), str(out)]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                          check=False)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, (f"sphinx build failed (exit {proc.returncode}) after {elapsed:.0f} s:\n"
                                  f"{proc.stderr[-20000:]}")
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-20000:]
    return out


def _pages(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.html")
                  if not p.relative_to(out).parts[0].startswith(("_static", "_sources", "_images")))


# ----------------------------------------------------------------------------- static checks
def test_site_has_the_teaching_pages(site):
    expected = ["index", "getting_started", "derivations", "cookbook", "conventions", "exactness", "api", "cli",
                "auto_tutorials/index", "auto_tutorials/tut_01_reinforce_to_gae",
                "auto_tutorials/tut_02_plateaus_and_npg", "auto_tutorials/tut_03_discount_term",
                "auto_tutorials/tut_04_test_your_estimator"]
    missing = [name for name in expected if not (site / f"{name}.html").is_file()]
    assert not missing, f"pages not built: {missing}"
    # the tutorials ran at build time and made their figures
    figures = sorted((site / "_images").glob("sphx_glr_tut_*.png"))
    for tut in ("tut_01", "tut_02", "tut_03"):
        assert any(f.name.startswith(f"sphx_glr_{tut}") for f in figures), f"no figure from {tut}: {figures}"


def _public_modules() -> list[str]:
    sys.path.insert(0, str(DOCS))
    try:
        conf = importlib.import_module("conf")
    finally:
        sys.path.remove(str(DOCS))
    return conf.public_modules()


def test_api_reference_lists_every_public_name(site):
    modules = _public_modules()
    assert {"tabularpg", "tabularpg.exact", "tabularpg.estimators", "tabularpg.testing"} <= set(modules)
    missing = []
    for modname in modules:
        page = site / "generated" / f"{modname}.html"
        if not page.is_file():
            missing.append(modname)
            continue
        html = page.read_text(encoding="utf-8")
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if isinstance(obj, type(sys)):
                continue  # submodules have their own pages
            if f">{name}<" not in html and f">{modname}.{name}<" not in html:
                missing.append(f"{modname}.{name}")
    assert not missing, f"public names without an entry in the API reference: {missing}"


def test_cli_reference_is_generated_from_the_parser(site):
    from tabularpg.cli import build_parser

    html = (site / "cli.html").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert sub.choices, "the parser has no sub-commands"
    for name, subparser in sub.choices.items():
        assert f'id="cli-{name}"' in html, f"sub-command {name!r} missing from the CLI reference"
        for action in subparser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in html, f"option {flag} of {name!r} missing from the CLI reference"


def test_no_page_points_outside_the_package(site):
    """The site stands alone: no page refers to files a user of the package does not have."""
    offenders = []
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        for pattern in (r"shared/", r"\bDESIGN\b", r"\bseeds? 0\d\d\b"):
            if re.search(pattern, text):
                offenders.append((str(page.relative_to(site)), pattern))
    assert not offenders, offenders


# ----------------------------------------------------------------------------- in the browser
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a browser that navigates on before a download ends closes the connection


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]

# Runs in each page after load: waits for MathJax, then reports what a reader would see.
_INSPECT = r"""async () => {
  const mathNodes = document.querySelectorAll('.math');
  if (mathNodes.length && window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const untypeset = [...mathNodes].filter(n => !n.querySelector('mjx-container')).map(n => n.textContent.slice(0, 80));
  const texErrors = [...document.querySelectorAll('mjx-container [data-mjx-error], mjx-merror, merror')]
      .map(n => (n.getAttribute('data-mjx-error') || n.textContent).slice(0, 80));
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, mjx-container, .highlight, .sphx-glr-script-out')
      .forEach(n => n.remove());
  const text = body.textContent;
  const rawTex = [];
  const commands = 'frac|sum|gamma|nabla|theta|pi|mathbb|mathcal|left|right|begin|hat|log';
  const re = new RegExp('\\\\\\(|\\\\\\[|\\$\\$|\\\\(' + commands + ')\\b|\\$[^$\\s][^$]{0,80}\\$', 'g');
  let m; while ((m = re.exec(text)) !== null && rawTex.length < 5) {
    rawTex.push(text.slice(Math.max(0, m.index - 30), m.index + 50).replace(/\s+/g, ' '));
  }
  const images = [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id)
      .concat([...document.querySelectorAll('a[name]')].map(e => e.name));
  return {nMath: mathNodes.length, nTypeset: document.querySelectorAll('mjx-container').length,
          untypeset, texErrors, rawTex, images, links, ids};
}"""


def crawl(site: Path, server: str, chromium: str, sync_api) -> dict:
    """Open every page of ``site`` (served at ``server``) in Chromium; what a reader sees."""
    reports, failures, external, js_errors = {}, [], [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def route(r):
            if r.request.url.startswith(server) or r.request.url.startswith(("data:", "blob:", "about:")):
                r.continue_()
            else:  # the site must work offline: nothing may be fetched from elsewhere
                external.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("response", lambda resp: failures.append((resp.status, resp.url)) if resp.status >= 400 else None)
        page.on("requestfailed", lambda req: failures.append((req.failure, req.url))
                if req.url.startswith(server) else None)
        page.on("pageerror", lambda exc: js_errors.append((page.url, str(exc))))
        for path in _pages(site):
            rel = path.relative_to(site).as_posix()
            page.goto(server + rel, wait_until="load")
            reports[rel] = page.evaluate(_INSPECT)
        browser.close()
    return {"pages": reports, "failed": failures, "external": external, "js_errors": js_errors}


@pytest.fixture(scope="module")
def browser_report(site, server):
    """Every page opened in headless Chromium: {"pages": {page: report}, "failed": ...}."""
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium found (install Debian's 'chromium' package, or set TABULARPG_CHROMIUM): "
                    "the rendered-page checks need a real browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser checks need playwright from the "
                                   "'docs' extra (pip install -e '.[docs]'); it drives the installed Chromium")
    return crawl(site, server, chromium, sync_api)


def test_browser_saw_every_page_without_errors(browser_report, site):
    assert set(browser_report["pages"]) == {p.relative_to(site).as_posix() for p in _pages(site)}
    assert not browser_report["external"], f"requests leaving the machine: {browser_report['external'][:10]}"
    assert not browser_report["failed"], f"failed requests: {browser_report['failed'][:10]}"
    assert not browser_report["js_errors"], f"JavaScript errors: {browser_report['js_errors'][:5]}"


def test_math_is_typeset_on_every_page(browser_report):
    pages = browser_report["pages"]
    bad = {rel: {k: r[k] for k in ("untypeset", "texErrors", "rawTex") if r[k]}
           for rel, r in pages.items() if r["untypeset"] or r["texErrors"] or r["rawTex"]}
    assert not bad, f"math not rendered: {bad}"
    # the check can fail: these pages are full of formulas, and each was typeset
    for rel in ("derivations.html", "conventions.html", "auto_tutorials/tut_01_reinforce_to_gae.html"):
        assert pages[rel]["nMath"] >= 5 and pages[rel]["nTypeset"] >= pages[rel]["nMath"], (rel, pages[rel]["nMath"])


def test_every_figure_loaded(browser_report):
    pages = browser_report["pages"]
    broken = [(rel, img["src"]) for rel, r in pages.items() for img in r["images"] if not img["ok"]]
    assert not broken, f"images that did not load: {broken}"
    for rel in ("auto_tutorials/tut_01_reinforce_to_gae.html", "auto_tutorials/tut_02_plateaus_and_npg.html",
                "auto_tutorials/tut_03_discount_term.html"):
        assert any("sphx_glr_tut_" in img["src"] and img["ok"] for img in pages[rel]["images"]), rel


def broken_links(pages: dict, server: str, site: Path) -> tuple[list, int]:
    """Internal links whose page or anchor does not exist, and how many links were checked."""
    ids = {rel: set(r["ids"]) for rel, r in pages.items()}
    broken, checked = [], 0
    for rel, r in pages.items():
        for href in r["links"]:
            if not href.startswith(server):
                continue
            url = urllib.parse.urlsplit(href[len(server):])
            target = urllib.parse.unquote(url.path) or "index.html"
            if target.endswith("/"):
                target += "index.html"
            checked += 1
            if target in ids:
                if url.fragment and urllib.parse.unquote(url.fragment) not in ids[target]:
                    broken.append((rel, href, "no such anchor"))
            elif not (site / target).is_file():
                broken.append((rel, href, "no such file"))
    return broken, checked


def test_every_internal_link_resolves(browser_report, server, site):
    broken, checked = broken_links(browser_report["pages"], server, site)
    assert checked > 1000, f"only {checked} internal links seen: the crawl did not work"
    assert not broken, f"{len(broken)} broken internal links, e.g. {broken[:10]}"


def test_the_browser_checks_catch_a_broken_page(tmp_path):
    """The checks above can fail: a page with untypeset TeX, a missing image, a dangling
    anchor and a link to a missing page is reported on each count."""
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium found (install Debian's 'chromium' package, or set TABULARPG_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright from the 'docs' extra")
    (tmp_path / "index.html").write_text(
        '<html><body><p>Inline <span class="math">\\(x^2\\)</span> and raw $\\frac{a}{b}$.</p>'
        '<img src="_images/missing.png"><a href="other.html#nowhere">a</a> <a href="gone.html">b</a>'
        '<a href="other.html#here">c</a></body></html>')
    (tmp_path / "other.html").write_text('<html><body><h1 id="here">Here</h1></body></html>')
    handler = functools.partial(_Quiet, directory=str(tmp_path))
    httpd = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    server = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        report = crawl(tmp_path, server, chromium, sync_api)
    finally:
        httpd.shutdown()
        httpd.server_close()
    page = report["pages"]["index.html"]
    assert page["untypeset"] == ["\\(x^2\\)"]
    assert page["rawTex"], "raw TeX in the text was not noticed"
    assert [img["ok"] for img in page["images"]] == [False]
    assert any(status == 404 and url.endswith("missing.png") for status, url in report["failed"])
    broken, checked = broken_links(report["pages"], server, tmp_path)
    assert checked == 3
    assert sorted(reason for _, _, reason in broken) == ["no such anchor", "no such file"]
