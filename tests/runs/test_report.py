"""`evalstream report`: one self-contained HTML file with plots, suites, runs and samples."""

from __future__ import annotations

import html.parser
import re
from pathlib import Path

import pytest

from evalstream.cli.main import main

from _runs import TASKS, killed_run, saved_run


class _Page(html.parser.HTMLParser):
    """Counts tags and collects every URL the page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.loads: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") or (name == "xlink:href" and value and "#" not in value):
                self.loads.append(f"{tag} {name}={value}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rep")
    for skill in (0.4, 0.5, 0.65):  # three checkpoints
        saved_run(out, skill, docs=60, prompt_tag="<b>&</b> ")
    return out


def test_report_of_several_runs_is_self_contained(root: Path, tmp_path: Path) -> None:
    """Scores, suite and run-over-run plots as inline SVG, nothing loaded, samples escaped."""
    report = tmp_path / "r" / "report.html"
    assert main(["report", str(root), "-o", str(report), "--samples", "5"]) == 0
    text = report.read_text()
    page = _Page()
    page.feed(text)
    assert page.loads == []  # no script, stylesheet, image or font from anywhere
    assert "script" not in page.tags and "link" not in page.tags
    plots = re.findall(r"<figure class='plot' data-plot='([^']+)'>\s*<svg", text)
    assert plots == ["scores-acc", "suites", "run-over-run"]
    assert page.tags["svg"] == 3 and page.tags["path"] > 100
    # the sample browser: 5 rows for each of 3 tasks of 3 runs, prompts escaped
    assert text.count("(first 5 of 60 rows)") == 9
    assert "&lt;b&gt;&amp;&lt;/b&gt; Q: suite|bench:alpha|0 question 0?" in text
    assert "<b>&</b>" not in text
    for task in TASKS:
        assert task in text


def test_report_of_one_run_has_no_run_over_run(root: Path, tmp_path: Path) -> None:
    report = tmp_path / "one.html"
    assert main(["report", str(root), "--latest", "-o", str(report)]) == 0
    text = report.read_text()
    assert "data-plot='scores-acc'" in text and "run-over-run" not in text
    assert text.count("(first 20 of 60 rows)") == 3


def test_report_needs_a_saved_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "none"), "-o", str(tmp_path / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_readme_looking_at_runs_commands_run(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each command of the README's "Looking at runs" block runs as written (push aside: its
    own test needs a Hub), on an output folder named like the README's."""
    import shlex
    import shutil

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme[readme.index("## Looking at runs") :].split("```bash\n", 1)[1].split("```")[0]
    shutil.copytree(root, tmp_path / "evalstream-out", symlinks=True)
    monkeypatch.chdir(tmp_path)
    results = sorted((tmp_path / "evalstream-out" / "results").rglob("results_*.json"))
    folders = (tmp_path / "evalstream-out" / ".evalstream").glob("*/status.json")
    run_id = min(folders).parent.name
    ran = []
    for line in block.splitlines():
        argv = shlex.split(line.split("#", 1)[0])
        if not argv or argv[1] == "push":
            continue
        names = {"RUN_A": str(results[0]), "RUN_B": str(results[1]), "RUN_ID": run_id}
        argv = [names.get(a, a) for a in argv]
        assert main(argv[1:]) == 0, line
        ran.append(argv[1])
    assert ran == ["ls", "show", "show", "compare", "compare", "report", "recover"]
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_run_over_run_lines_are_all_told_apart() -> None:
    """14 task lines (a 12-task page, a suite, `all`): no two share colour, style and marker."""
    from evalstream.runs import plots

    tasks = [f"suite|bench:t{k}|0" for k in range(13)]
    series = [
        plots.Series(f"run {r}", {t: {"acc": 0.3 + 0.01 * k + 0.1 * r, "acc_stderr": 0.02}
                                  for k, t in enumerate([*tasks, "all"])})
        for r in range(3)
    ]  # fmt: skip
    fig = plots.run_over_run_figure(series, [*tasks, "all"], "acc")
    (ax,) = fig.axes
    looks = [
        (c.lines[0].get_color(), c.lines[0].get_linestyle(), c.lines[0].get_marker())
        for c in ax.containers
    ]
    assert len(looks) == 14 and len(set(looks)) == 14
    colours = [look[0] for look in looks[:10]]
    assert len(set(colours)) == 10  # the first ten lines differ by colour alone


def test_the_sample_browser_shows_the_chosen_answer(root: Path, tmp_path: Path) -> None:
    """A multiple-choice row shows the choice with the highest log-likelihood, whether it is
    gold, and each choice's log-likelihood to 3 decimals, not the raw list."""
    from evalstream.runs.report import chosen_answer

    assert chosen_answer([-5.590151374375497, -10.7, -3.550618792415244], ["A", "B", "C"], [2]) == (
        "chose C (right)\nlog-likelihoods: A: -5.590 · B: -10.700 · C: -3.551"
    )
    assert chosen_answer([-1.0, -0.5], ["A", "B"], [0]).startswith("chose B (wrong)")
    assert chosen_answer(["362"], [], []) is None  # a generation is shown as it is
    report = tmp_path / "r.html"
    assert main(["report", str(root), "--latest", "-o", str(report), "--samples", "3"]) == 0
    text = report.read_text()
    assert "chose A (right)\nlog-likelihoods: A: 0.000 · B: -1.000" in text
    assert "[0.0, -1.0]" not in text and "[-1.0, 0.0]" not in text


def test_plots_fill_the_page_width(root: Path, tmp_path: Path) -> None:
    """Every plot is an SVG without a fixed size (its viewBox scales it) drawn at 100 % width."""
    report = tmp_path / "r.html"
    assert main(["report", str(root), "-o", str(report), "--samples", "1"]) == 0
    text = report.read_text()
    roots = re.findall(r"<figure class='plot'[^>]*>\s*(<svg[^>]*>)", text)
    assert len(roots) == 3
    for tag in roots:
        assert "viewBox=" in tag and " width=" not in tag and " height=" not in tag
    assert "figure svg{display:block;width:100%;height:auto}" in text


def test_a_recovered_run_says_its_times_are_the_recoverys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report and `show` label a recovered run's config timings as the recovery's."""
    dead = killed_run(tmp_path, 20)
    assert main(["recover", str(dead)]) == 0
    report = tmp_path / "r.html"
    assert main(["report", str(tmp_path), "-o", str(report)]) == 0
    text = report.read_text()
    assert "partial (recovered)</span><br><span class='muted'>times are the recovery's" in text
    assert (
        "<p class='warn' data-note='timings'>recovered: its start, end and evaluation times are "
        f"the recovery&#x27;s, not the run&#x27;s (which started in {dead})</p>"
    ) in text
    capsys.readouterr()
    assert main(["show", str(dead)]) == 0
    assert "config (recovered: its start, end and evaluation times are the recovery's" in (
        capsys.readouterr().out
    )
