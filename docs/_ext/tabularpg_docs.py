"""Sphinx extension of the tabularpg docs: the CLI reference, generated from the parser.

``.. tabularpg-cli::`` renders :func:`tabularpg.cli.build_parser` (the parser the
``tabularpg`` command itself uses): the top-level usage, then for every sub-command its
usage line, help text and a table of its options with defaults. Nothing is copied by hand,
so the page cannot drift from the command.
"""
from __future__ import annotations

import argparse
import re

from docutils import nodes
from docutils.parsers.rst import Directive


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse has no public accessor for sub-commands
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def _option_rows(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flags = ", ".join(action.option_strings) or action.dest
        if action.nargs != 0:
            metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}")
                                         if action.choices else action.dest.upper())
            flags += f" {metavar}"
        default = "" if action.default in (None, False, argparse.SUPPRESS) else repr(action.default)
        if action.required:
            default = "required"
        yield flags, action.help or "", default


def _literal(text: str) -> nodes.literal_block:
    node = nodes.literal_block(text, text)
    node["language"] = "text"
    return node


def _table(rows) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=3)
    table += group
    for width in (30, 55, 15):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body

    def row(cells, literal_first):
        r = nodes.row()
        for i, cell in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            para += nodes.literal(cell, cell) if (literal_first and i != 1 and cell) else nodes.Text(cell)
            entry += para
            r += entry
        return r

    head += row(("option", "meaning", "default"), False)
    for cells in rows:
        body += row(cells, True)
    return table


class CliReference(Directive):
    has_content = False

    def run(self):
        from tabularpg.cli import build_parser

        parser = build_parser()
        out: list[nodes.Node] = [_literal(parser.format_help())]
        for name, help_text, sub in _subparsers(parser):
            section = nodes.section(ids=[f"cli-{name}"], names=[f"tabularpg {name}"])
            section += nodes.title(text=f"tabularpg {name}")
            if help_text:
                section += nodes.paragraph(text=help_text[0].upper() + help_text[1:] + ".")
            section += _literal(sub.format_usage().replace("usage: ", "", 1).strip())
            section += _table(list(_option_rows(sub)))
            self.state.document.note_implicit_target(section)
            out.append(section)
        return out


class EstimatorTable(Directive):
    """``.. tabularpg-estimators::``: every registered estimator, its per-step weight, its
    options and whether it is unbiased, read from :data:`tabularpg.estimators.REGISTRY`."""

    has_content = False

    def run(self):
        from tabularpg.estimators import BATCH_BASELINES, REGISTRY

        table = nodes.table()
        group = nodes.tgroup(cols=4)
        table += group
        for width in (22, 48, 18, 12):
            group += nodes.colspec(colwidth=width)
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body

        def row(cells, literal):
            r = nodes.row()
            for cell, lit in zip(cells, literal):
                entry = nodes.entry()
                para = nodes.paragraph()
                para += nodes.literal(cell, cell) if (lit and cell) else nodes.Text(cell)
                entry += para
                r += entry
            return r

        head += row(("estimator", "per-step weight", "options", "unbiased"), (False,) * 4)
        for name, est in REGISTRY.items():
            options = ", ".join(est.options) or "none"
            verdict = ("yes" if est.unbiased else "with the true critic" if "critic" in est.options
                       else "no: see expected()")
            body += row((name, est.formula, options, verdict),
                        (True, True, False, False))
        note = nodes.paragraph(text="Batch baselines (baseline=...): " + ", ".join(BATCH_BASELINES) + ".")
        return [table, note]


# -- cross-references to re-exported names ---------------------------------------------------
def _import_dotted(name: str):
    """The object named ``a.b.c`` (module attributes, class attributes), or None."""
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _canonical(obj, tail: str = "") -> str | None:
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if isinstance(obj, (type(_import_dotted), type)):
        return f"{mod}.{qual}{tail}" if mod and qual else None
    return None


def resolve_reexports(app, env, node, contnode):
    """Resolve a Python cross-reference to where its object is documented.

    ``tabularpg.MDP`` is documented once, as ``tabularpg.mdp.MDP``; a docstring may name it
    either way, or by its bare name inside a module that imports it. The object is imported
    and looked up under its defining module (``obj.__module__``); a name that still has no
    documentation stays a warning (and fails the ``-W`` build).
    """
    if node.get("refdomain") != "py":
        return None
    from sphinx.util.nodes import make_refnode

    domain = env.get_domain("py")
    target = node["reftarget"].lstrip(".~")
    modname = node.get("py:module")
    clsname = node.get("py:class")
    candidates = []
    for prefix in filter(None, [f"{modname}.{clsname}" if modname and clsname else None, modname, "tabularpg"]):
        candidates.append(f"{prefix}.{target}")
    candidates.append(target)
    for name in candidates:
        head, _, last = name.rpartition(".")
        owner = _import_dotted(head) if head else None
        obj = _import_dotted(name)
        canon = _canonical(obj) if obj is not None else None
        if canon is None and owner is not None and isinstance(owner, type):
            canon = _canonical(owner, f".{last}")   # a method or attribute of a re-exported class
        if canon and canon in domain.objects:
            entry = domain.objects[canon]
            return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, canon)
    # a unique documented object whose full name ends with the target
    matches = [name for name in domain.objects if name.endswith("." + target)]
    if len(matches) == 1:
        entry = domain.objects[matches[0]]
        return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0])
    # a name that exists in the package but is not public (not in any ``__all__``, so not
    # documented): plain text, no link. A name that does not exist at all stays a warning.
    if any(name.startswith("tabularpg.") and _exists(name) for name in candidates):
        return contnode
    return None


def _exists(name: str) -> bool:
    """``a.b.C.x`` is a module attribute, a class attribute or a dataclass field."""
    import dataclasses

    if _import_dotted(name) is not None:
        return True
    head, _, last = name.rpartition(".")
    owner = _import_dotted(head) if head else None
    return (isinstance(owner, type) and dataclasses.is_dataclass(owner)
            and last in {f.name for f in dataclasses.fields(owner)})


# -- docstring text that reStructuredText would misread ---------------------------------------
_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")
_STAR_IN_SHAPE = re.compile(r"(?<![\\*\w])\*(?=[A-Za-z_][\w.]*\s*[,)\]])")


def _escape_line(line: str) -> str:
    parts = _LITERAL.split(line)
    return "".join(p if i % 2 else _STAR_IN_SHAPE.sub(r"\\*", p) for i, p in enumerate(parts))


def clean_docstring(app, what, name, obj, options, lines):
    """Shapes such as ``(k, *theta_shape)`` in plain text are not emphasis; the one-line
    summary ``Mask of shape (S,): ...`` of a property or constant is not napoleon's
    ``type: description``."""
    if what == "data" and not isinstance(obj, (str, bytes)) and type(obj).__doc__:
        from sphinx.util.docstrings import prepare_docstring

        if [ln for ln in lines if ln.strip()] == [ln for ln in prepare_docstring(type(obj).__doc__) if ln.strip()]:
            lines[:] = []   # no doc comment: do not show the docstring of the value's type (dict, tuple)
    for i, line in enumerate(lines):
        lines[i] = _escape_line(line)
    if what in ("property", "attribute", "data") and lines and re.match(r"^[^:`]+:\s", lines[0]):
        head, _, tail = lines[0].partition(": ")
        lines[0] = f"{head} \u2014 {tail}"


def setup(app):
    app.connect("autodoc-process-docstring", clean_docstring, priority=400)
    app.add_directive("tabularpg-cli", CliReference)
    app.add_directive("tabularpg-estimators", EstimatorTable)
    app.connect("missing-reference", resolve_reexports)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
