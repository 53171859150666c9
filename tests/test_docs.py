"""The documentation site builds in strict mode (a broken link or reference fails), and the
README stays a front door."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocstrings", reason="the docs extra: pip install -e '.[docs]'")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "advlit.attacks.APGD" in (tmp_path / "site" / "api" / "attacks" / "index.html").read_text()


def test_readme_is_short_and_points_inside_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for link in [part.split(")")[0] for part in readme.split("](")[1:]]:
        if not link.startswith(("http", "#")):
            assert (ROOT / link).exists(), link
    assert "../shared" not in readme


def test_no_reference_to_a_design_document_outside_the_repository():
    name = "DESIGN" + ".md"  # not spelled out, so this file does not match itself
    for path in [*ROOT.glob("advlit/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("scripts/*.py"),
                 *ROOT.glob("*.md"), *ROOT.glob("docs/*.md")]:
        assert name not in path.read_text(), path
