"""Sphinx configuration of the tabularpg documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` from the
repository root (``pip install -e ".[docs]"`` first). Everything is offline: MathJax is
copied at build time from the installed ``django-static-mathjax`` package (no CDN), there
is no intersphinx, and the tutorials run here and make their figures.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import tabularpg  # noqa: E402

project = "tabularpg"
author = "the tabularpg authors"
copyright = "the tabularpg authors"
release = version = tabularpg.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "tabularpg_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_templates", "_more_pages.md", "tutorials/README.rst", "**/*.ipynb", "**.py.md5",
                    "auto_tutorials/*.py", "auto_tutorials/*.zip", "auto_tutorials/*.json"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_theme = "alabaster"
html_title = f"tabularpg {release}"
html_theme_options = {"description": "Exact and Monte Carlo policy gradients on finite MDPs",
                      "fixed_sidebar": True, "page_width": "1100px", "sidebar_width": "240px"}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False
html_copy_source = False

# -- cross-references: warnings are errors (-W), every reference checked (nitpicky) ---------
nitpicky = True
# No intersphinx (the build is offline): names of other projects' types cannot resolve.
import builtins  # noqa: E402

nitpick_ignore = [("py:class", n) for n in dir(builtins) if isinstance(getattr(builtins, n), type)]
nitpick_ignore += [("py:class", "abc.ABC"), ("py:exc", "ValueError"), ("py:exc", "TypeError")]
nitpick_ignore_regex = [
    (r"py:.*", r"(.*\.)?_[A-Za-z].*"),     # private modules and names are not documented
    (r"py:(class|obj|data)", r"(numpy|np|scipy|sparse|gymnasium|hypothesis|argparse|pandas|matplotlib)\b.*"),
    (r"py:(class|obj|data)", r"(ndarray|Generator|ArrayLike|Callable|Sequence|Mapping|Iterable|Iterator)"),
]

# -- API reference -------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = False     # a module's page lists exactly its __all__
autosummary_imported_members = True
autodoc_typehints = "none"                # types are in the numpydoc sections; no dangling xrefs
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_param = False                # parameter types stay text: no cross-reference guessing
napoleon_use_rtype = False
napoleon_custom_sections = [("Attributes", "params_style")]  # attribute types as text, like parameters
napoleon_preprocess_types = False

# -- Markdown ------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# -- math, offline ---------------------------------------------------------------------------
MATHJAX_COMPONENT = "tex-svg-full.js"   # TeX input with every extension, SVG output: no font files
mathjax_path = f"mathjax/{MATHJAX_COMPONENT}"
mathjax3_config = {
    "tex": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]]},
    "options": {"enableMenu": False},     # the menu would load accessibility components
    "svg": {"fontCache": "global"},
}


def _mathjax_dir() -> Path:
    try:
        import mathjax  # the django-static-mathjax distribution (MathJax 3.2.2, Apache-2.0)
    except ImportError as exc:  # pragma: no cover - reported as a build error
        raise RuntimeError("the docs need MathJax from the 'docs' extra: "
                           "pip install -e '.[docs]' (package django-static-mathjax)") from exc
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_COMPONENT).is_file():  # pragma: no cover
        raise RuntimeError(f"no MathJax component {MATHJAX_COMPONENT} under {es5}")
    return es5


def _copy_mathjax(app, exception):
    """Copy the locally installed MathJax into the built site's ``_static/mathjax``."""
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    es5 = _mathjax_dir()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5 / MATHJAX_COMPONENT, dest / MATHJAX_COMPONENT)   # one self-contained file


# -- tutorials (executed at build time) -----------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r"/tut_",
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "plot_gallery": "True",
    "run_stale_examples": True,          # always run: the numbers must come from the library as it is
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "within_subsection_order": "FileNameSortKey",
    "min_reported_time": 10_000,
    "show_memory": False,
    "show_signature": False,
    "write_computation_times": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "copyfile_regex": "",
}


# -- the list of public modules, generated so that new modules appear without edits ----------
def public_modules() -> list[str]:
    """Every importable public module of the package (no ``_private`` and no ``__main__``)."""
    names = ["tabularpg"]
    todo = [tabularpg]
    while todo:
        pkg = todo.pop()
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name.startswith("_"):
                continue
            full = f"{pkg.__name__}.{info.name}"
            mod = importlib.import_module(full)
            names.append(full)
            if info.ispkg:
                todo.append(mod)
    return sorted(names)


def _write_api_index():
    lines = [
        ".. This file is written by conf.py at every build; do not edit.",
        "",
        "API reference",
        "=============",
        "",
        "Every public module of the package, and on each module's page every name in its",
        "``__all__`` with a one-line summary. The pages are generated from the docstrings.",
        "",
        ".. autosummary::",
        "   :toctree: generated",
        "",
    ]
    lines += [f"   {name}" for name in public_modules()]
    text = "\n".join(lines) + "\n"
    path = HERE / "api.rst"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _reexports(modules: list[str]) -> dict[str, list[str]]:
    """Names in a module's ``__all__`` that are documented on another module's page.

    Each public object is documented once: in its defining module if that module is public
    and exports it, else in the most specific public module that exports it (a class
    defined in a private module and exported by ``tabularpg.policies`` and ``tabularpg``
    is documented under ``tabularpg.policies``). The other modules list it with a link.
    """
    exporters: dict[int, list[tuple[str, str]]] = {}
    objects: dict[int, object] = {}
    for name in modules:
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", ()):
            obj = getattr(mod, attr, None)
            if isinstance(obj, type(sys)) or not (isinstance(obj, type) or callable(obj)):
                continue  # submodules have their own pages; data is documented where listed
            exporters.setdefault(id(obj), []).append((name, attr))
            objects[id(obj)] = obj
    out: dict[str, list[str]] = {}
    for key, pairs in exporters.items():
        names = [n for n, _ in pairs]
        defined_in = getattr(objects[key], "__module__", None)
        home = defined_in if defined_in in names else max(names, key=lambda n: (n.count("."), len(n)))
        for name, attr in pairs:
            if name != home:
                out.setdefault(name, []).append(attr)
    return out


def _write_more_pages():
    """Top-level pages that the index does not list yet (added by other work) go into a
    "More" table of contents, so that every page is reachable (and ``-W`` stays green)."""
    index = (HERE / "index.md").read_text(encoding="utf-8").splitlines()
    listed = {"index"} | {line.strip() for line in index if re.fullmatch(r"[\w/]+", line.strip())}
    extra = sorted(p.stem for p in [*HERE.glob("*.md"), *HERE.glob("*.rst")]
                   if p.stem not in listed and not p.stem.startswith("_"))
    text = "<!-- Written by conf.py at every build; do not edit. -->\n"
    if extra:
        text += "\n```{toctree}\n:maxdepth: 1\n:caption: More\n\n" + "\n".join(extra) + "\n```\n"
    path = HERE / "_more_pages.md"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


_write_api_index()
_write_more_pages()
_MODULES = public_modules()


def _data(modules: list[str]) -> dict[str, list[str]]:
    """Names in a module's ``__all__`` that are plain data (not modules, classes, callables)."""
    out: dict[str, list[str]] = {}
    for name in modules:
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", ()):
            obj = getattr(mod, attr, None)
            if not (isinstance(obj, (type(sys), type)) or callable(obj)):
                out.setdefault(name, []).append(attr)
    return out


autosummary_context = {"reexported": _reexports(_MODULES), "moddata": _data(_MODULES)}


def setup(app):
    app.connect("build-finished", _copy_mathjax)
    _mathjax_dir()  # fail early with a clear message
