"""Leaderboard tables and paired comparisons: pure functions of the recorded runs.

Each registered protocol tables its own runs (``Protocol.leaderboard_section``)
and pairs two of them (``Protocol.compare``); this module puts the sections
together and checks that two runs may be compared at all. When a configuration
was run more than once, its latest run is shown; superseded runs are not
shown, and the header says how many are hidden.
"""

from __future__ import annotations

from typing import Any

from fewshot.core import registry
from fewshot.core.errors import FewshotError
from fewshot.core.protocol import Section
from fewshot.leaderboard.runs import CELL, label

HEADER = """# fewshot leaderboard

Built by `fewshot leaderboard` from {runs} recorded runs{hidden}. Each section below is one evaluation protocol:
what its numbers mean is written under its heading.
"""


def sections(runs: list[dict[str, Any]]) -> list[Section]:
    """Every protocol's section of the runs it scored, in the protocols' order."""
    found = []
    for name in registry.names("protocol"):
        protocol = registry.protocol(name)()
        section = protocol.leaderboard_section([r for r in runs if r["protocol_kind"] == protocol.kind])
        if section is not None:
            found.append((protocol.order, name, section))
    return [section for *_, section in sorted(found, key=lambda entry: entry[:2])]


def render(runs: list[dict[str, Any]], fmt: str, hidden: int = 0) -> str:
    """The leaderboard of ``runs`` as Markdown, CSV or a single HTML page; ``hidden`` superseded runs are counted."""
    parts = sections(runs)
    if not parts:
        return (
            "no runs recorded yet: `fewshot eval --learner NAME --ways 5 --shots 1` records one (`fewshot learners`)\n"
        )
    unknown = sorted({r["protocol_kind"] for r in runs} - set(registry.names("protocol")))
    hidden_text = f" ({hidden} superseded runs hidden: `fewshot runs --all` lists them)" if hidden else ""
    missing = f"\nRuns of protocols not installed here are left out: {', '.join(unknown)}.\n" if unknown else ""
    if fmt == "csv":
        return "\n".join(section.table.to_csv(index=False) for section in parts)
    if fmt == "md":
        text = HEADER.format(runs=len(runs), hidden=hidden_text) + missing
        for section in parts:
            text += f"\n## {section.title}\n\n{section.intro}\n\n{markdown(section.table)}\n"
        return text
    return html_page(parts, len(runs), hidden_text)


def markdown(frame: Any) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def html_page(parts: list[Section], runs: int, hidden_text: str) -> str:
    import html

    body = "".join(
        f"<h2>{html.escape(s.title)}</h2><p>{html.escape(s.intro)}</p>{s.table.to_html(index=False)}"
        + "".join(charts(s.points))
        for s in parts
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>fewshot leaderboard</title></head><body>"
        f"<h1>fewshot leaderboard</h1><p>{runs} recorded runs{html.escape(hidden_text)}</p>{body}</body></html>\n"
    )


def charts(points: Any) -> list[str]:
    """One embedded PNG per chart of a section's points: each learner's mean with its interval."""
    if points is None or points.empty:
        return []
    import base64
    import html
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = []
    for title, group in points.groupby("chart", sort=False):
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(group) + 1.0))
        ax.errorbar(group["mean"], range(len(group)), xerr=group["ci95"], fmt="o", capsize=3)
        ax.set_yticks(range(len(group)), group["label"])
        ax.set_xlabel("accuracy % (95% interval)")
        ax.set_title(str(title))
        ax.invert_yaxis()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        images.append(
            f'<img alt="{html.escape(str(title))}" '
            f'src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'
        )
    return images


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Paired difference A - B in percentage points over identical episodes (images, classes), with its interval."""
    differing = [k for k in (*CELL, "protocol_kind") if a[k] != b[k]]
    if differing or a["episodes_digest"] != b["episodes_digest"]:
        what = ", ".join(f"{k} {a[k]} vs {b[k]}" for k in differing) or "the episodes' images differ"
        raise FewshotError(
            f"runs {a['id']} and {b['id']} were not evaluated on identical episodes ({what}); "
            f"compare two runs of the same benchmark cell"
        )
    if len(a["accuracies"]) != len(b["accuracies"]):
        raise FewshotError(f"runs {a['id']} and {b['id']} have different per-episode records; compare complete runs")
    outcome = registry.protocol(a["protocol_kind"])().compare(a, b)
    return {
        "a": label(a),
        "b": label(b),
        "run_a": a["id"],
        "run_b": b["id"],
        "unit": outcome["unit"],
        "pairs": outcome["pairs"],
        "difference": round(100 * outcome["difference"], 4),
        "ci95": round(100 * outcome["ci95"], 4),
        "significant": outcome["significant"],
        "verdict": outcome["verdict"],
    }
