"""Zero-shot attributes of a glyph class, parsed from its Unicode character name.

A name such as ``LATIN CAPITAL LETTER O WITH STROKE AND ACUTE`` reads as a
script, a case, a base letter and modifiers; each becomes one binary
attribute, named ``group:VALUE``:

* ``script:`` the script the name starts with (``script:LATIN``), one of
  ``tasks.glyphs.SCRIPTS``;
* ``case:`` ``CAPITAL`` or ``SMALL``, absent for caseless scripts;
* ``base:`` the letter itself, the last word before ``WITH`` (``base:O``;
  ``base:ALPHA``, ``base:BEH``). Scripts share base names where Unicode does
  (Latin, Old Italic and Cyrillic all have ``base:A``);
* ``form:`` every other word before ``WITH`` (``TURNED``, ``DOTLESS``, ``OPEN``,
  ``FINAL``, ``LIGATURE``, ``WEST-CREE``), ``SMALL CAPITAL`` as one value, and
  Arabic's positional forms (``form:INITIAL FORM``);
* ``with:`` each phrase of the ``WITH`` clause, split at ``AND``: a diacritic
  or modifier such as ``with:ACUTE``, ``with:DOT ABOVE``, ``with:TONOS``,
  ``with:CEDILLA``, ``with:STROKE``, ``with:HOOK``.

The vocabulary of a dataset is every attribute that occurs in its class names
(``attribute_matrix``), sorted, so the same names give the same columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

GROUPS = ("script", "case", "base", "form", "with")
POSITIONAL_FORM = re.compile(r" ((?:ISOLATED|INITIAL|MEDIAL|FINAL) FORM)$")
MARKERS = ("LETTER",)  # words that say what the name is, not how the letter looks


def name_attributes(name: str, scripts: Sequence[str]) -> tuple[str, ...]:
    """The attributes of one Unicode letter name, in the order script, case, base, form, with."""
    script = next((s for s in sorted(scripts, key=len, reverse=True) if name.startswith(s + " ")), None)
    if script is None:
        raise ValueError(f"{name!r} does not start with a known script ({', '.join(scripts)})")
    rest = name[len(script) + 1 :]
    forms: list[str] = []
    if (positional := POSITIONAL_FORM.search(rest)) is not None:
        forms.append(positional.group(1))
        rest = rest[: positional.start()]
    head, _, modifiers = rest.partition(" WITH ")
    if " SMALL CAPITAL " in f" {head} ":
        forms.append("SMALL CAPITAL")
        head = f" {head} ".replace(" SMALL CAPITAL ", " ").strip()
    words = [w for w in head.split() if w not in MARKERS]
    case = [w for w in words if w in ("CAPITAL", "SMALL")]
    words = [w for w in words if w not in ("CAPITAL", "SMALL")]
    if not words:
        raise ValueError(f"{name!r} names no letter")
    base = words[-1]
    forms = words[:-1] + forms
    withs = [phrase.strip() for phrase in modifiers.split(" AND ")] if modifiers else []
    return (
        f"script:{script}",
        *(f"case:{c}" for c in case),
        f"base:{base}",
        *(f"form:{f}" for f in forms),
        *(f"with:{w}" for w in withs),
    )


def attribute_matrix(attribute_sets: Iterable[Sequence[str]]) -> tuple[tuple[str, ...], torch.Tensor]:
    """The sorted vocabulary of the attribute sets and their binary matrix ``[classes, attributes]`` (float)."""
    sets = [set(a) for a in attribute_sets]
    vocabulary = tuple(sorted(set().union(*sets), key=lambda a: (GROUPS.index(a.split(":")[0]), a)))
    column = {a: j for j, a in enumerate(vocabulary)}
    matrix = torch.zeros(len(sets), len(vocabulary))
    for i, attributes in enumerate(sets):
        matrix[i, [column[a] for a in attributes]] = 1.0
    return vocabulary, matrix
