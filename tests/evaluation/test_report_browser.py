"""The HTML reports render in headless Chromium with every image decoded.

Needs Chromium (Debian: ``apt-get install chromium``); without it the test fails and says so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from heplearn.evaluation.compare import compare_runs
from heplearn.evaluation.evaluate import EvaluationSettings
from heplearn.evaluation.plots import PlotStyle

pytestmark = pytest.mark.heavy  # headless Chromium: `make test` (CI) runs it, plain pytest does not

CHROMIUM = Path("/usr/bin/chromium")
CHECK_IMAGES = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.alt);
  const result = document.createElement("pre");
  result.textContent = `IMAGE-CHECK images=${images.length} broken=${broken.length} [${broken.join("|")}]`;
  document.body.appendChild(result);
});
</script>
"""


def chromium(page: Path, profile: Path, *arguments: str) -> str:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: install Chromium to test the HTML report (apt-get install -y chromium)")
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *arguments,
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def image_check(report: Path, tmp_path: Path, extra_html: str = "") -> tuple[int, int, str]:
    page = tmp_path / f"check-{report.parent.name}.html"
    page.write_text(report.read_text().replace("</body>", extra_html + CHECK_IMAGES + "</body>"))
    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    match = re.search(r"IMAGE-CHECK images=(\d+) broken=(\d+) \[(.*?)\]", dom)
    assert match, dom[-2000:]
    return int(match[1]), int(match[2]), match[3]


def test_evaluation_report_has_no_broken_image(bdt_evaluation: Any, tmp_path: Path) -> None:
    report = bdt_evaluation.report
    pngs = [path for path in bdt_evaluation.plots if path.suffix == ".png"]
    assert image_check(report, tmp_path) == (len(pngs), 0, "")
    # the check itself notices a broken image
    images, broken, names = image_check(report, tmp_path, '<img src="data:image/png;base64,AAAA" alt="bad">')
    assert (images, broken, names) == (len(pngs) + 1, 1, "bad")


def test_comparison_report_has_no_broken_image(
    tagging_runs: dict[str, Path], tagging_files: dict[str, str], tmp_path: Path
) -> None:
    settings = EvaluationSettings(style=PlotStyle(formats=("png",), dpi=60), bootstrap=10)
    result = compare_runs(
        list(tagging_runs.values()), [tagging_files["test"]], tmp_path / "compare", settings=settings, progress=False
    )
    assert image_check(result.report, tmp_path) == (len(result.plots), 0, "")
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
