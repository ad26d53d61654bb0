"""``selene-ledger slices``: the table of engine slices, derived from the slice registry (README.md holds a
copy that tests/unit/test_slices_table.py compares with this output); ``--cost``: what each slice costs in
non-blank lines per layer (issue 15's budget: a ledger + current slice at most 80 lines of declaration, an
audit-backed one at most 30; tests/unit/test_slice_cost.py holds the audit-backed figure)."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

from consumers.projections import wiring
from contracts.registry import REGISTRY

#: The checkout: the cost counts the files of this build's slices.
ROOT = Path(__file__).resolve().parents[1]

KINDS = {
    "ledger_current": "ledger + current",
    "audit_backed": "audit-backed",
    "ledger_only": "ledger only",
    "custom": "hand-written reducer",
}
HEADER = (
    "| seed row | engine | slice | kind | tables | acceptance tests | doc |",
    "| --- | --- | --- | --- | --- | --- | --- |",
)


def rows() -> list[str]:
    """One markdown row per seed 000 row: a declared slice, or a row a slice carries (``also``), in order."""
    out: list[tuple[int, str]] = []
    for s in sorted(REGISTRY.slices, key=lambda s: (s.seed_row, s.name)):
        owned = [c.spec.table for c in s.ledgers]
        current = [t.name for p in wiring(s.name).projections for t in p.writes]
        on = sorted({m.spec.table for m in s.events} - set(owned))
        tables = ", ".join(f"`{t}`" for t in [*owned, *current])
        if on:
            tables += (" and " if tables else "") + "rows on " + ", ".join(f"`{t}`" for t in on)
        out.append((s.seed_row, _row(s.seed_row, s.engines, s.name, s.kind, tables, s.acceptance, s.doc)))
        for r in s.also:  # another seed row carried on this slice's tables
            on_tables = ", ".join(f"`{t}`" for t in r.tables) + " (in the `" + s.name + "` slice)"
            out.append((r.row, _row(r.row, r.engines, s.name, s.kind, on_tables, r.acceptance, r.doc)))
    return [row for _, row in sorted(out, key=lambda x: x[0])]


def _row(seed_row: int, engines: tuple[str, ...], name: str, kind: str, tables: str, acceptance: str, doc: str) -> str:
    return (
        f"| {seed_row} | {', '.join(engines)} | `{name}` | {KINDS[kind]} | {tables} | "
        f"{acceptance}-01..04 | [{doc.rsplit('/', 1)[-1]}]({doc}) |"
    )


def table() -> str:
    return "\n".join((*HEADER, *rows()))


@dataclass(frozen=True)
class Lines:
    """Non-blank lines of a contracts module, split three ways (they add up to ``total``): the ``examples``
    function (or the expression given as ``examples=`` in the ``SLICE`` declaration), the lines that hold only
    docstrings or comments, and the rest (the declaration proper)."""

    total: int
    docs: int
    examples: int
    rest: int


def non_blank(source: str) -> int:
    """Lines with something other than whitespace: the figure issue 15's budget is stated in."""
    return sum(1 for line in source.splitlines() if line.strip())


def split_lines(source: str) -> Lines:
    """Split ``source``'s non-blank lines with ``ast`` (docstrings: any statement that is only a string literal,
    which covers module, class, function and attribute docstrings; the examples function) and ``tokenize``
    (comments: a line whose only tokens are a comment)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    nonblank = {i for i, line in enumerate(lines, 1) if line.strip()}
    examples: set[int] = set()
    docs: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            docs.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "examples":
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            examples.update(range(first, (node.end_lineno or node.lineno) + 1))
        elif isinstance(node, ast.keyword) and node.arg == "examples" and not isinstance(node.value, ast.Name):
            examples.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    code: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            code.update(range(tok.start[0], tok.end[0] + 1))
    examples &= nonblank
    docs = (nonblank - examples) & ((nonblank - code) | docs)
    return Lines(len(nonblank), len(docs), len(examples), len(nonblank) - len(docs) - len(examples))


def _owner(stem: str, modules: list[str]) -> str | None:
    """The module a file named ``stem`` (``test_ph1_c_gate``, ``0005_work_orders``) is named after: the longest
    module name it is, or starts with followed by ``_`` (``test_audit_decisions`` is ``audit_decisions``'s, not
    ``audit``'s; ``test_ph1_write`` is not ``ph1_w``'s)."""
    found = [m for m in modules if stem == m or stem.startswith(m + "_")]
    return max(found, key=len) if found else None


def slice_files(root: Path, name: str) -> dict[str, list[Path]]:
    """A slice's files by layer, found by the name they share (CONVENTIONS.md: one module per slice, with the
    same name in every layer). A layer the slice does without has no file."""
    modules = sorted(p.stem for p in (root / "contracts").glob("*.py"))
    sql = [p for p in sorted((root / "sql").glob("[0-9]*_*.sql")) if _owner(p.stem.split("_", 1)[1], modules) == name]
    tests = [p for p in sorted((root / "tests").rglob("test_*.py")) if _owner(p.stem[5:], modules) == name]
    return {
        "projection": [p for p in [root / "consumers" / "projections" / f"{name}.py"] if p.is_file()],
        "repository": [p for p in [root / "consumers" / "repositories" / f"{name}.py"] if p.is_file()],
        "producer": [p for p in [root / "producers" / f"{name}.py"] if p.is_file()],
        "sql": sql,
        "tests": tests,
    }


COST_HEADER = (
    "| slice | kind | contracts | of it: docs | examples | rest | projection | repository | producer | sql | tests |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
)


def cost(root: Path = ROOT, files: bool = False) -> str:
    """Non-blank lines per slice and layer (``selene-ledger slices --cost``): the cost of a slice, as issue 15
    states its budget. ``contracts`` is the whole module (docstrings and examples included); its split follows.
    A layer of several files (sql, tests) shows its sum. With ``files``, one line per file follows the table."""
    out = list(COST_HEADER)
    listing: list[str] = []
    for s in sorted(REGISTRY.slices, key=lambda s: (s.seed_row, s.name)):
        module = root / "contracts" / f"{s.name}.py"
        c = split_lines(module.read_text())
        layers = slice_files(root, s.name)
        sums = [sum(non_blank(p.read_text()) for p in ps) if ps else "-" for ps in layers.values()]
        out.append(
            f"| `{s.name}` | {KINDS[s.kind]} | {c.total} | {c.docs} | {c.examples} | {c.rest} | "
            + " | ".join(map(str, sums))
            + " |"
        )
        for p in [module, *(p for ps in layers.values() for p in ps)]:
            listing.append(f"{s.name} {p.relative_to(root)} {non_blank(p.read_text())}")
    return "\n".join([*out, *(["", *listing] if files else [])])
