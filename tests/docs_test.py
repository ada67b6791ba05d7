"""The code's citations of the repository docs point at existing sections.

Docstrings and comments cite a document as `docs/<name>.md`, optionally
followed by sections: `§N`, a range `§N-§M` (or with an en dash) or a list
`§N, §M`. Every cited file must exist, and every cited section number must
have a `## N.` heading in it. No Python file may still cite the team's
former reference, which is not part of the repository.
"""

import os
import re
from typing import Dict, List, NamedTuple, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED_DIRS = ("wemem_tf", "attacks", "wemem_eval", "wemem_cli", "benchmarks",
                "tools", "tests")
# Spelled in pieces so that this file neither cites nor mentions them itself.
_DOCS = "docs" + "/"
RETIRED_REFERENCE = "METHOD" + ".md"

# A section list right after the file name (optionally on the next line of a
# wrapped docstring or comment): §N, then any of "-§M", "–§M" or ", §M".
_SECTIONS = (r"(?:[ \t]*\n[ \t]*(?:#[ \t]*)?|[ \t]*)"
             r"§\d+(?:[ \t]*[-–,][ \t]*§\d+)*")
CITATION = re.compile(re.escape(_DOCS) + r"(?P<doc>[\w.-]+(?:/[\w.-]+)*\.md)"
                      r"(?P<sections>" + _SECTIONS + r")?")
_SECTION_ITEM = re.compile(r"(?P<sep>[-–,])?[ \t]*§(?P<number>\d+)")
HEADING = re.compile(r"^##[ \t]+(\d+)\.", re.MULTILINE)


class Citation(NamedTuple):
  """One citation found in a source file.

  Attributes:
    path: the citing file, relative to the repository root.
    line: 1-based line of the citation's start.
    doc: the cited document, relative to docs/.
    sections: the cited section numbers, in order (empty: the whole file).
  """
  path: str
  line: int
  doc: str
  sections: Tuple[int, ...]


def parse_sections(text: str) -> Tuple[int, ...]:
  """Section numbers of a list like "§1–§3, §5" (ranges expanded)."""
  numbers: List[int] = []
  for item in _SECTION_ITEM.finditer(text):
    number = int(item.group("number"))
    if item.group("sep") in ("-", "–") and numbers:
      numbers.extend(range(numbers[-1] + 1, number + 1))
    else:
      numbers.append(number)
  return tuple(numbers)


def find_citations(text: str, path: str = "<text>") -> List[Citation]:
  """Every `docs/<name>.md [§...]` citation in `text`."""
  found = []
  for match in CITATION.finditer(text):
    sections = match.group("sections") or ""
    found.append(Citation(path, text.count("\n", 0, match.start()) + 1,
                          match.group("doc"), parse_sections(sections)))
  return found


def python_files() -> List[str]:
  """Paths (relative to the root) of the .py files under SCANNED_DIRS."""
  paths = []
  for top in SCANNED_DIRS:
    if not os.path.isdir(os.path.join(ROOT, top)):
      continue  # e.g. wemem_eval before it exists
    for directory, dirs, files in os.walk(os.path.join(ROOT, top)):
      dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
      for name in sorted(files):
        if name.endswith(".py"):
          paths.append(os.path.relpath(os.path.join(directory, name), ROOT))
  return paths


def _read(path: str) -> str:
  with open(os.path.join(ROOT, path), encoding="utf-8") as f:
    return f.read()


def _headings(doc: str, cache: Dict[str, Set[int]]) -> Set[int]:
  if doc not in cache:
    cache[doc] = {int(n) for n in HEADING.findall(_read(_DOCS + doc))}
  return cache[doc]


@pytest.mark.parametrize("text, expected", [
    (f"see {_DOCS}method.md.", [("method.md", ())]),
    (f"settings ({_DOCS}method.md §5).", [("method.md", (5,))]),
    (f"{_DOCS}method.md §10 and §3", [("method.md", (10,))]),
    (f"Shadow protocol ({_DOCS}method.md §1–§2): ...", [("method.md", (1, 2))]),
    (f"{_DOCS}method.md §2-§4", [("method.md", (2, 3, 4))]),
    (f"{_DOCS}method.md §3 - §5", [("method.md", (3, 4, 5))]),
    (f"{_DOCS}method.md §3 - 5 items", [("method.md", (3,))]),
    (f"({_DOCS}method.md §3, §5, §6 settings)", [("method.md", (3, 5, 6))]),
    (f"{_DOCS}method.md §3, 5 attacks", [("method.md", (3,))]),
    (f'"""Text ({_DOCS}method.md\n    §7, Song)."""', [("method.md", (7,))]),
    (f"# as in {_DOCS}method.md\n# §8.", [("method.md", (8,))]),
    (f"{_DOCS}method.md\n\n§8", [("method.md", ())]),
    (f"{_DOCS}guide/setup.md §1; {_DOCS}method.md §11",
     [("guide/setup.md", (1,)), ("method.md", (11,))]),
    ("nothing cited here, not even method.md §2", []),
])
def test_find_citations_reads_every_form(text, expected):
  assert [(c.doc, c.sections) for c in find_citations(text)] == expected


def test_find_citations_gives_line_numbers():
  text = f"a\nb {_DOCS}method.md §1\nc\n{_DOCS}method.md §2"
  assert [c.line for c in find_citations(text)] == [2, 4]


def test_cited_docs_and_sections_exist():
  problems, cache = [], {}
  for path in python_files():
    for citation in find_citations(_read(path), path):
      where = f"{citation.path}:{citation.line}: {_DOCS}{citation.doc}"
      if not os.path.isfile(os.path.join(ROOT, _DOCS + citation.doc)):
        problems.append(f"{where}: no such file")
        continue
      missing = [n for n in citation.sections
                 if n not in _headings(citation.doc, cache)]
      if missing:
        problems.append(f"{where}: no '## N.' heading for "
                        + ", ".join(f"§{n}" for n in missing))
  assert not problems, "broken doc citations:\n" + "\n".join(problems)


def test_no_python_file_mentions_the_retired_reference():
  mentions = []
  for path in python_files():
    for number, line in enumerate(_read(path).splitlines(), 1):
      if RETIRED_REFERENCE in line:
        mentions.append(f"{path}:{number}: {line.strip()}")
  assert not mentions, (
      f"{len(mentions)} lines mention {RETIRED_REFERENCE}, which is not in the "
      f"repository; cite {_DOCS}method.md (same section numbers):\n"
      + "\n".join(mentions))
