import pytest
import torch

from fewshot.tasks.glyph_names import attribute_matrix, name_attributes
from fewshot.tasks.glyphs import SCRIPTS


@pytest.mark.parametrize(
    "name, expected",
    [
        ("LATIN SMALL LETTER A WITH ACUTE", ("script:LATIN", "case:SMALL", "base:A", "with:ACUTE")),
        (
            "LATIN CAPITAL LETTER O WITH STROKE AND ACUTE",
            ("script:LATIN", "case:CAPITAL", "base:O", "with:STROKE", "with:ACUTE"),
        ),
        ("LATIN SMALL LETTER C WITH DOT ABOVE", ("script:LATIN", "case:SMALL", "base:C", "with:DOT ABOVE")),
        ("GREEK CAPITAL LETTER ALPHA WITH TONOS", ("script:GREEK", "case:CAPITAL", "base:ALPHA", "with:TONOS")),
        ("LATIN SMALL LETTER DOTLESS I", ("script:LATIN", "case:SMALL", "base:I", "form:DOTLESS")),
        ("LATIN SMALL LIGATURE FL", ("script:LATIN", "case:SMALL", "base:FL", "form:LIGATURE")),
        ("LATIN LETTER SMALL CAPITAL B", ("script:LATIN", "base:B", "form:SMALL CAPITAL")),
        ("ARABIC LETTER HAH INITIAL FORM", ("script:ARABIC", "base:HAH", "form:INITIAL FORM")),
        ("HEBREW LETTER FINAL PE WITH DAGESH", ("script:HEBREW", "base:PE", "form:FINAL", "with:DAGESH")),
        ("CANADIAN SYLLABICS WEST-CREE WI", ("script:CANADIAN SYLLABICS", "base:WI", "form:WEST-CREE")),
        ("OLD ITALIC LETTER A", ("script:OLD ITALIC", "base:A")),
        ("CYRILLIC SMALL LETTER U WITH DIAERESIS", ("script:CYRILLIC", "case:SMALL", "base:U", "with:DIAERESIS")),
    ],
)
def test_a_unicode_name_reads_as_script_case_base_form_and_modifiers(name, expected):
    assert name_attributes(name, SCRIPTS) == expected


def test_a_name_outside_the_scripts_is_an_error():
    with pytest.raises(ValueError, match="known script"):
        name_attributes("RUNIC LETTER FEHU FEOH FE F", SCRIPTS)


def test_the_matrix_has_one_sorted_column_per_attribute_and_ones_exactly_where_a_class_has_it():
    sets = [
        name_attributes(n, SCRIPTS)
        for n in ("LATIN SMALL LETTER A WITH ACUTE", "GREEK SMALL LETTER ALPHA", "LATIN CAPITAL LETTER A")
    ]
    vocabulary, matrix = attribute_matrix(sets)
    assert vocabulary == (
        "script:GREEK",
        "script:LATIN",
        "case:CAPITAL",
        "case:SMALL",
        "base:A",
        "base:ALPHA",
        "with:ACUTE",
    )
    assert matrix.tolist() == [[0, 1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 0, 1, 0], [0, 1, 1, 0, 1, 0, 0]]
    assert matrix.dtype == torch.float32
