"""Figures in the docs' prose come from benchmarks/results/*.json, never from a hand.

README.md and docs/*.md (docs/BENCHMARKS.md is rendered whole by render.py)
carry their measured figures between markers, invisible on the rendered page:

    <!-- fig EXPR | SPEC -->TEXT<!-- /fig -->     TEXT is format(EXPR, SPEC)
    <!-- table NAME -->                          the lines between are what
    ...                                          render_docs_tables.TABLES[NAME]()
    <!-- /table -->                              returns

EXPR is a Python expression over the results files, each by its name
(``dpd_families["cells"]["pa_wh/gmp/ila"]["wall_s"]``), the short names of
`render_docs_tables.VIEWS` (``families["pa_wh/gmp/ila"]["wall_s"]``) and its
helpers (``lo``, ``hi``, ``mean``, ``gap``, ...). SPEC is a format
spec (``.1f``, ``+.1f``, ``,d``, ``.0f``); ``.1f minus`` writes a negative
value with the typographic minus (U+2212). This renders every marker anew;
``--check`` only compares, and tests/test_doc_figures.py runs that check, so
a figure that no longer matches its results file fails the suite.

Every other figure with a unit in the prose (dB, s, ms, %, bytes, x ...)
must be a marker, or a setting rather than a measurement, listed in
`NOT_MEASURED` with the phrase that carries it; the test scans for the rest.

    python benchmarks/render_docs.py           # rewrite README.md and docs/*.md's marked figures
    python benchmarks/render_docs.py --check   # exit 1 naming every marked figure that differs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FIG = re.compile(r"<!-- fig (?P<expr>.+?)(?: \| (?P<spec>[^>]*?))? -->(?P<text>.*?)<!-- /fig -->", re.S)
TABLE = re.compile(
    r"(?P<open><!-- table (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /table -->)", re.S
)


def docs() -> list[Path]:
    """The documents whose prose may quote figures: README.md and docs/*.md but BENCHMARKS.md."""
    return [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "BENCHMARKS.md")]


class Results(dict):
    """Every results file by its name (benchmarks/results/NAME.json), read once."""

    def __init__(self) -> None:
        super().__init__({p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))})

    def namespace(self) -> dict:
        """What a marker's expression sees: the results, their `VIEWS` and the `HELPERS`."""
        from render_docs_tables import HELPERS, VIEWS

        views = {}
        for name, view in VIEWS.items():
            with contextlib.suppress(KeyError, TypeError):  # its results file missing: a marker says so
                views[name] = view(self)
        return {"__builtins__": {}, **HELPERS, **self, **views}


def fmt(value: object, spec: str | None) -> str:
    """``value`` as the doc shows it: ``format(value, spec)``, ``minus`` for U+2212."""
    spec = (spec or "").strip()
    typographic = spec.endswith("minus")
    spec = spec.removesuffix("minus").strip()
    text = format(value, spec) if spec else str(value)
    return text.replace("-", "\u2212") if typographic else text


@dataclass(frozen=True)
class Mismatch:
    """A marked figure whose text is not what its results file gives."""

    doc: str
    line: int
    what: str
    shown: str
    computed: str

    def __str__(self) -> str:
        where = f"{self.doc}:{self.line}: {self.what}"
        return f"{where}: the doc says {self.shown!r}, the results {self.computed!r}"


def render_text(text: str, results: Results | None = None, doc: str = "?") -> tuple[str, list[Mismatch]]:
    """``text`` with every marker rendered from the results, and the markers whose text differed."""
    from render_docs_tables import TABLES

    results = results if results is not None else Results()
    namespace = results.namespace()
    found: list[Mismatch] = []

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def table(m: re.Match) -> str:
        name = m["name"]
        if name not in TABLES:
            raise KeyError(f"{doc}:{line_of(m.start())}: no table {name!r} in render_docs_tables.TABLES")
        body = "\n".join(TABLES[name](results)) + "\n"
        if body != m["body"]:
            found.append(Mismatch(doc, line_of(m.start()), f"table {name}", m["body"].strip(), body.strip()))
        return m["open"] + body + m["close"]

    def fig(m: re.Match) -> str:
        try:
            value = eval(m["expr"], namespace)  # the project's own docs, nothing from outside
        except Exception as exc:  # the doc names a cell the results do not hold: say where
            raise KeyError(f"{doc}:{line_of(m.start())}: {m['expr']}: {exc!r}") from None
        shown = fmt(value, m["spec"])
        if shown != m["text"]:
            found.append(Mismatch(doc, line_of(m.start()), m["expr"], m["text"], shown))
        return m.group(0).replace(f"-->{m['text']}<!-- /fig -->", f"-->{shown}<!-- /fig -->")

    out = FIG.sub(fig, text)
    out = TABLE.sub(table, out)
    return out, found


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the prose: outside code blocks and rendered tables, markers removed."""
    cleaned = TABLE.sub(lambda m: m["open"] + "\n" * m["body"].count("\n") + m["close"], text)
    cleaned = FIG.sub(lambda m: "", cleaned)
    fenced = False
    for n, line in enumerate(cleaned.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


UNIT = r"(?:dBc|dBm|dB|ms|µs|s|%|×|x|KB|kB|KiB|bytes|samples/s|queries/s)"
NUMBER = r"[-−+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?"
FIGURE = re.compile(rf"(?<![\w.\-−/]){NUMBER}(?:\s?(?:to|and|-|–|/)\s?{NUMBER})*\s?{UNIT}(?![\w/])")
TABLE_FIGURE = re.compile(r"(?<![\w.])[-−+]\d+\.\d+(?![\w.])")  # a signed decimal in a table row


def unmarked_figures(path: Path) -> list[str]:
    """Figures in ``path``'s prose neither marked nor carried by a `NOT_MEASURED` phrase."""
    from render_docs_tables import NOT_MEASURED

    text = path.read_text()
    rel = str(path.relative_to(ROOT))
    allowed = NOT_MEASURED.get(rel, ())
    out = []
    for n, line in prose_lines(text):
        covered = line
        for phrase in allowed:
            covered = covered.replace(phrase, " ")
        hits = [m.group() for m in FIGURE.finditer(covered)]
        if line.lstrip().startswith("|"):
            hits += [m.group() for m in TABLE_FIGURE.finditer(covered)]
        out += [f"{rel}:{n}: {h!r} in: {line.strip()[:100]}" for h in hits]
    return out


def check(paths: list[Path] | None = None) -> list[str]:
    """Every problem with the docs' figures: marked ones that differ, unmarked ones."""
    results = Results()
    problems: list[str] = []
    for path in paths or docs():
        rel = str(path.relative_to(ROOT))
        _, mismatches = render_text(path.read_text(), results, rel)
        problems += [str(m) for m in mismatches]
        problems += [f"unmarked figure {u}" for u in unmarked_figures(path)]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 naming what differs")
    args = ap.parse_args(argv)
    if args.check:
        problems = check()
        print("\n".join(problems) or "every figure in the docs' prose matches benchmarks/results")
        return 1 if problems else 0
    results = Results()
    for path in docs():
        text = path.read_text()
        new, changed = render_text(text, results, str(path.relative_to(ROOT)))
        if new != text:
            path.write_text(new)
            print(f"{path.relative_to(ROOT)}: {len(changed)} figure(s) rewritten from the results")
    left = [u for path in docs() for u in unmarked_figures(path)]
    if left:
        print("unmarked figures (mark them or list them in NOT_MEASURED):\n  " + "\n  ".join(left))
    return 1 if left else 0


Render = Callable[[Results], list[str]]

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
