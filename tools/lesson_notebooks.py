"""Write the lesson notebooks (lesson1–4) in English and Simplified Chinese from one description.

Usage: ``.venv/bin/python tools/lesson_notebooks.py`` writes ``notebooks/lesson*.ipynb`` and
``notebooks/zh/lesson*.ipynb`` without outputs; ``make notebooks NB=...`` (or
``tests/save_notebooks.py``) then executes and stores them. Each lesson is a list of cells:
``md(english, chinese)`` and ``code(source, tags, zh=chinese_source)``; the code is the same in
both languages except where a printed label or title is in words. The Chinese notebooks start by
switching the package to Chinese (labels, captions, figure titles) and picking a CJK font.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lesson_cells import LESSONS  # noqa: E402

SETUP = {
    "en": "import cnnviz_widgets as cv\n",
    "zh": 'import cnnviz_widgets as cv\n\ncv.set_language("zh")  # 标签、说明和图标题都用中文\n'
    "cv.use_cjk_font()  # matplotlib 用能显示中文的字体\n",
}


def build(cells: list[tuple], language: str) -> nbformat.NotebookNode:
    """One notebook from a lesson's cells, in ``language``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3", "display_name": "Python 3", "language": "python",
    }  # fmt: skip
    for cell in cells:
        if cell[0] == "md":
            text = cell[1] if language == "en" else cell[2]
            nb.cells.append(nbformat.v4.new_markdown_cell(text.strip()))
        else:
            _, source, tags, zh = cell
            source = zh if (language == "zh" and zh is not None) else source
            source = source.replace("import cnnviz_widgets as cv\n", SETUP[language])
            new = nbformat.v4.new_code_cell(source.strip())
            if tags:
                new.metadata["tags"] = list(tags)
            nb.cells.append(new)
    return nb


def main() -> int:
    for name, cells in LESSONS.items():
        for language, folder in (("en", ROOT / "notebooks"), ("zh", ROOT / "notebooks" / "zh")):
            folder.mkdir(parents=True, exist_ok=True)
            nb = build(cells, language)
            nbformat.validate(nb)
            nbformat.write(nb, folder / name)
            print(f"wrote {(folder / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
