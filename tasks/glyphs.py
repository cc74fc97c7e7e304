"""Glyphs: letters of fifteen Unicode scripts rendered from the fonts matplotlib ships.

The suite's offline default benchmark, built in seconds on first use with
nothing to download. A class is one letter; its group is its script. Each
class has 20 instances, 28x28 grayscale with strokes bright as in Omniglot:
the faces of DejaVu Sans, Serif and Sans Mono and of STIX General (regular,
bold, italic or oblique, bold italic) that cover the letter, in turn, each
under a seeded small affine jitter (rotation, shear, scale, shift) and a
stroke-width jitter (thinner, as drawn, or thicker).

* Letters: general category Lu, Ll, Lt or Lo, named after one of ``SCRIPTS``,
  covered by at least two faces.
* Visually identical letters are one class: letters whose rendering in their
  first covering face is the same bitmap at 28x28 (Latin A, Greek Alpha and
  Cyrillic A, say) are merged into the class of the lowest code point, whose
  script the class takes; its ``meta["merged"]`` lists the other names. So a
  test letter never looks exactly like a training letter.
* Protocol ``scripts``: split by script, so test alphabets are never seen in
  training (``SPLIT`` below). Each class carries its Unicode name and script,
  each instance its font family, ``sans``, ``serif`` or ``mono`` (a domain).
* Descriptions for zero-shot learning (``describe``): binary attributes parsed
  from the Unicode name (``tasks/glyph_names.py`` documents the vocabulary),
  and the name itself as text, embedded offline.

The cache key records the matplotlib version, the Unicode database version and
the md5 of every font file, since each changes the images.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ft2font import FT2Font, LoadFlags

from fewshot.core.data import Benchmark, ClassImages, ClassInfo, Split, cached, file_digest, shifted_splits
from fewshot.core.dataset import Dataset
from fewshot.core.errors import FewshotError
from fewshot.tasks.descriptions import hashed_text_embedding, zero_shot_split
from fewshot.tasks.glyph_names import attribute_matrix, name_attributes

VERSION = 1
FACES = (  # (file, family), in the order a letter's instances cycle through them
    ("DejaVuSans.ttf", "sans"),
    ("DejaVuSerif.ttf", "serif"),
    ("DejaVuSansMono.ttf", "mono"),
    ("STIXGeneral.ttf", "serif"),
    ("DejaVuSans-Bold.ttf", "sans"),
    ("DejaVuSerif-Bold.ttf", "serif"),
    ("DejaVuSansMono-Bold.ttf", "mono"),
    ("STIXGeneralBol.ttf", "serif"),
    ("DejaVuSans-Oblique.ttf", "sans"),
    ("DejaVuSerif-Italic.ttf", "serif"),
    ("DejaVuSansMono-Oblique.ttf", "mono"),
    ("STIXGeneralItalic.ttf", "serif"),
    ("DejaVuSans-BoldOblique.ttf", "sans"),
    ("DejaVuSerif-BoldItalic.ttf", "serif"),
    ("DejaVuSansMono-BoldOblique.ttf", "mono"),
    ("STIXGeneralBolIta.ttf", "serif"),
)
FAMILIES = ("sans", "serif", "mono")
SPLIT = {
    "train": ("LATIN", "CANADIAN SYLLABICS", "ARABIC", "CYRILLIC", "OGHAM"),
    "val": ("ARMENIAN", "HEBREW", "NKO"),
    "test": ("GREEK", "GEORGIAN", "TIFINAGH", "LAO", "LISU", "OLD ITALIC", "COPTIC"),
}
SCRIPTS = tuple(s for role in ("train", "val", "test") for s in SPLIT[role])
INSTANCES = 20
LETTER_CATEGORIES = ("Lu", "Ll", "Lt", "Lo")
# The zero-shot protocols' class split: sizes and seed, fixed. gzsl holds out this many images of each seen class.
ZERO_SHOT = {"unseen": 400, "val": 200, "seed": 0, "held_out": 4}


class Glyphs(Dataset):
    name = "glyphs"
    default = True  # renders from the fonts matplotlib ships: the quick start needs no files
    summary = "letters of 15 Unicode scripts rendered from matplotlib's fonts, 20 instances each (offline)"
    citation = (
        "fewshot's own benchmark: letters of The Unicode Standard (Unicode Consortium) in the DejaVu and "
        "STIX fonts matplotlib ships"
    )
    protocols = ("scripts", "zsl", "gzsl")
    default_protocol = "scripts"
    descriptions: ClassVar[Mapping[str, str]] = {
        "attributes": "binary, parsed from the Unicode name (script, case, base letter, forms, modifiers)",
        "text": "the Unicode name, embedded by hashed words and character trigrams (offline)",
    }
    domains = FAMILIES

    def status(self, root: Path) -> tuple[bool, str]:
        return True, "built from matplotlib's fonts on first use; nothing to download"

    def describe(self, data: ClassImages, side: str) -> tuple[tuple[str, ...], torch.Tensor]:
        """Every class's description ``[classes, D]`` and the names of its D columns (for text: the hash buckets)."""
        if side == "attributes":
            return attribute_matrix(name_attributes(c.name, SCRIPTS) for c in data.classes)
        if side == "text":
            embedding = hashed_text_embedding([c.name for c in data.classes])
            return tuple(f"bucket{j}" for j in range(embedding.shape[1])), embedding
        raise ValueError(f"glyphs has no {side!r} descriptions: choose one of {', '.join(self.descriptions)}")

    def benchmark(
        self,
        protocol: str,
        root: Path,
        size: int = 28,
        source: str | None = None,
        target: str | None = None,
        target_labels: int = 0,
    ) -> Benchmark:
        data = load(size)
        tables: dict[str, torch.Tensor] = {}

        def describe(side: str) -> torch.Tensor:
            if side not in tables:
                tables[side] = self.describe(data, side)[1]
            return tables[side]

        sides = tuple(self.descriptions)
        if protocol != "scripts" and (source or target or target_labels):
            raise FewshotError(
                f"font-family shifts are episodes of the scripts protocol; leave out --protocol {protocol}"
            )
        if protocol in ("zsl", "gzsl"):
            return Benchmark(
                self.name,
                protocol,
                data,
                self.zero_shot_splits(data, protocol),
                notes=f"{protocol}: unseen classes are new combinations of seen attribute values",
                zero_shot=True,
                evaluation="gzsl" if protocol == "gzsl" else "",
                sides=sides,
                describe=describe,
            )
        scripts = np.array([c.group for c in data.classes])
        splits = {role: Split.of(np.flatnonzero(np.isin(scripts, names))) for role, names in SPLIT.items()}
        if source is None and target is None:
            if target_labels:
                raise FewshotError("--target-labels needs a domain shift: add --source and --target")
            return Benchmark(self.name, protocol, data, splits, notes="split by script", sides=sides, describe=describe)
        return self.shifted(data, protocol, splits, source, target, target_labels)

    def shifted(
        self,
        data: ClassImages,
        protocol: str,
        splits: dict[str, Split],
        source: str | None,
        target: str | None,
        target_labels: int,
    ) -> Benchmark:
        """Few-shot across font families: episodes of the training scripts in ``source`` letters, test episodes of
        the test scripts in ``target`` letters, and the training scripts' ``target`` letters unlabelled."""
        if source is None or target is None:
            raise FewshotError("a font-family shift needs both --source and --target (sans, serif or mono)")
        for role, family in (("source", source), ("target", target)):
            if family not in FAMILIES:
                raise FewshotError(f"--{role} {family}: glyphs has the font families {', '.join(FAMILIES)}")
        if source == target:
            raise FewshotError(f"--source and --target are both {source}: a domain shift needs two different families")
        if target_labels:
            raise FewshotError("--target-labels applies to the digits' uda protocol; few-shot shifts use none")
        assert data.domains is not None, "every glyph image is drawn in a font family (its domain)"
        shifted = shifted_splits(splits, data.domains, FAMILIES.index(source), FAMILIES.index(target))
        return Benchmark(
            self.name,
            protocol,
            data,
            shifted,
            source=source,
            target=target,
            default_queries=5,
            notes=f"split by script; {source} letters in training, {target} letters in test episodes",
        )

    def zero_shot_splits(self, data: ClassImages, protocol: str) -> dict[str, Split]:
        """``zsl``: seen (train), val and unseen (test) classes of ``ZERO_SHOT``'s sizes and seed, each val
        and test class a new combination of attribute values all seen in training. ``gzsl`` (Xian et al.
        2018): ``ZERO_SHOT["held_out"]`` seeded images of every seen class move from training to the test
        split, which holds them and every image of the unseen classes."""
        _, attributes = self.describe(data, "attributes")
        roles = zero_shot_split(attributes, ZERO_SHOT["unseen"], ZERO_SHOT["val"], ZERO_SHOT["seed"])
        if protocol == "zsl":
            return {role: Split.of(classes) for role, classes in roles.items()}
        keys = torch.from_numpy(np.random.default_rng(ZERO_SHOT["seed"]).random(data.labels.numel()))
        order = torch.argsort(data.labels * 2.0 + keys)  # images grouped by class, in a seeded order within it
        first = torch.cumsum(data.class_counts(), 0) - data.class_counts()
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel()) - first[data.labels[order]]
        seen = torch.from_numpy(np.isin(data.labels.numpy(), roles["train"]))
        unseen = torch.from_numpy(np.isin(data.labels.numpy(), roles["test"]))
        held_out = seen & (rank < ZERO_SHOT["held_out"])
        return {
            "train": Split.of(roles["train"], image_mask=seen & ~held_out),
            "val": Split.of(roles["val"]),
            "test": Split.of(np.union1d(roles["train"], roles["test"]), image_mask=held_out | unseen),
        }


def font_dir() -> Path:
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def load(size: int = 28) -> ClassImages:
    fonts = {name: file_digest(font_dir() / name) for name, _ in FACES}
    return cached(
        "glyphs",
        VERSION,
        size,
        lambda: build(size),
        matplotlib=matplotlib.__version__,
        unicode=unicodedata.unidata_version,
        fonts=fonts,
    )


def script_of(name: str) -> str | None:
    return next((s for s in SCRIPTS if name.startswith(s + " ")), None)


class _Renderer:
    """Letters drawn by FreeType, cropped to their ink and centred on a square canvas of twice the output size."""

    def __init__(self, size: int):
        self.canvas = 2 * size
        self.fonts = [FT2Font(os.fspath(font_dir() / name)) for name, _ in FACES]
        for font in self.fonts:
            font.set_size(self.canvas * 0.64, 72)  # an em of ~64% of the canvas leaves room for accents

    def coverage(self) -> dict[int, list[int]]:
        covered: dict[int, list[int]] = {}
        for face, font in enumerate(self.fonts):
            for code in font.get_charmap():
                char = chr(code)
                if unicodedata.category(char) in LETTER_CATEGORIES and script_of(unicodedata.name(char, "")):
                    covered.setdefault(code, []).append(face)
        return {code: faces for code, faces in sorted(covered.items()) if len(faces) >= 2}

    def draw(self, code: int, face: int) -> np.ndarray | None:
        font = self.fonts[face]
        font.set_text(chr(code), 0.0, flags=LoadFlags.NO_HINTING)  # unhinted outlines, downsampled later
        font.draw_glyphs_to_bitmap(antialiased=True)
        ink = np.asarray(font.get_image())
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        if rows.size == 0:
            return None
        ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        limit = self.canvas - 4
        if max(ink.shape) > limit:  # a rare tall or wide letter is scaled down to fit
            scale = limit / max(ink.shape)
            shape = (max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale)))
            ink = (
                F.interpolate(
                    torch.from_numpy(ink.astype(np.float32))[None, None],
                    size=shape,
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )[0, 0]
                .round()
                .clamp(0, 255)
                .numpy()
                .astype(np.uint8)
            )
        out = np.zeros((self.canvas, self.canvas), np.uint8)
        top, left = (self.canvas - ink.shape[0]) // 2, (self.canvas - ink.shape[1]) // 2
        out[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
        return out


def _classes(renderer: _Renderer, coverage: dict[int, list[int]]) -> list[list[int]]:
    """Letters grouped by identical 28x28 rendering in their first covering face; lowest code point first."""
    groups: dict[tuple[int, bytes], list[int]] = {}
    for code, faces in coverage.items():
        image = renderer.draw(code, faces[0])
        if image is None:
            continue
        half = image.reshape(image.shape[0] // 2, 2, image.shape[1] // 2, 2).mean((1, 3)).round().astype(np.uint8)
        groups.setdefault((faces[0], half.tobytes()), []).append(code)
    return sorted(groups.values(), key=lambda g: (SCRIPTS.index(script_of(unicodedata.name(chr(g[0])))), g[0]))


def _jitter(codes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Affine matrices and stroke changes for each letter's instances, seeded by its code point alone."""
    draws = np.concatenate([np.random.default_rng((VERSION, int(c))).random((INSTANCES, 7)) for c in codes])
    angle = np.deg2rad((draws[:, 0] - 0.5) * 20)  # +-10 degrees
    shear = (draws[:, 1] - 0.5) * 0.3  # +-0.15
    scale = 0.9 + 0.2 * draws[:, 2]
    aspect = 1 + (draws[:, 3] - 0.5) * 0.1
    shift = (draws[:, 4:6] - 0.5) * 0.2  # +-5% of the canvas
    cos, sin = np.cos(angle), np.sin(angle)
    theta = np.zeros((len(draws), 2, 3))
    # grid_sample maps output to input coordinates: the inverse of scaling the letter up
    theta[:, 0, 0], theta[:, 0, 1] = cos / (scale * aspect), (-sin + shear) / (scale * aspect)
    theta[:, 1, 0], theta[:, 1, 1] = sin / (scale / aspect), cos / (scale / aspect)
    theta[:, :, 2] = shift
    stroke = np.digitize(draws[:, 6], [0.25, 0.75]) - 1  # -1 thinner, 0 as drawn, +1 thicker
    return torch.from_numpy(theta).float(), torch.from_numpy(stroke)


def _dilate(x: torch.Tensor) -> torch.Tensor:
    """3x3 grey dilation as two separable maxima of shifted copies (much faster than max_pool2d here)."""
    padded = F.pad(x, (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """grid_sample on the affine grid of ``theta`` (affine_grid's, built with broadcasting: far faster here)."""
    n, _, h, w = x.shape
    ys = ((torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1).view(1, h, 1)
    xs = ((torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1).view(1, 1, w)
    t = theta.view(n, 6, 1, 1)
    grid = torch.stack([t[:, 0] * xs + t[:, 1] * ys + t[:, 2], t[:, 3] * xs + t[:, 4] * ys + t[:, 5]], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def build(size: int = 28) -> ClassImages:
    renderer = _Renderer(size)
    coverage = renderer.coverage()
    groups = _classes(renderer, coverage)
    classes, faces, drawings = [], [], []
    for group in groups:
        head = group[0]
        drawn = {face: renderer.draw(head, face) for face in coverage[head]}
        available = [face for face, image in drawn.items() if image is not None]
        if len(available) < 2:
            continue
        classes.append(
            ClassInfo(
                unicodedata.name(chr(head)),
                script_of(unicodedata.name(chr(head))) or "",
                {"codepoint": head, "char": chr(head), "merged": [unicodedata.name(chr(c)) for c in group[1:]]},
            )
        )
        for j in range(INSTANCES):
            face = available[j % len(available)]
            image = drawn[face]
            assert image is not None, "the available faces are those that draw the glyph"
            faces.append(face)
            drawings.append(image)
    theta, stroke = _jitter(np.array([c.meta["codepoint"] for c in classes]))
    images = torch.empty(len(drawings), 1, size, size, dtype=torch.uint8)
    for start in range(0, len(drawings), 4096):
        part = slice(start, start + 4096)
        x = torch.from_numpy(np.stack(drawings[part])).float().div_(255).unsqueeze(1)
        s = stroke[part]
        x[s > 0] = _dilate(x[s > 0])
        x[s < 0] = 0.5 * (x[s < 0] - _dilate(-x[s < 0]))  # half-way to an erosion: slightly thinner strokes
        x = _warp(x, theta[part])
        images[part] = (F.avg_pool2d(x, 2).clamp(0, 1) * 255).round().to(torch.uint8)
    family = torch.tensor([FAMILIES.index(FACES[f][1]) for f in faces])
    labels = torch.arange(len(classes)).repeat_interleave(INSTANCES)
    return ClassImages(images=images, labels=labels, classes=tuple(classes), domains=family, domain_names=FAMILIES)
