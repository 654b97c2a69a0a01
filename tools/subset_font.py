"""Make the small Chinese font shipped as the fallback for matplotlib figures.

Usage::

    apt-get install fonts-noto-cjk          # the source: Noto Sans CJK (SIL OFL 1.1)
    .venv/bin/python tools/subset_font.py   # writes cnnviz_widgets/data/fonts/*.otf

The subset holds the characters of the Chinese catalog, of the Chinese notebooks, of the
glossary, ASCII and common punctuation: enough for every figure and label the package and its
tutorials draw. Machines with a full CJK font installed use that one instead
(:func:`cnnviz_widgets.i18n.use_cjk_font`), so titles you write yourself get every character.
Uses fontTools, which matplotlib already depends on. Re-run it when the catalog or the Chinese
notebooks gain new characters (``tests/test_i18n.py`` checks the catalog's coverage).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
SC_INDEX = 2  # JP, KR, SC, TC, HK in the collection
TARGET = ROOT / "cnnviz_widgets" / "data" / "fonts" / "NotoSansSC-cnnviz-subset.otf"
FAMILY = "Noto Sans SC cnnviz subset"
LICENCE = Path("/usr/share/doc/fonts-noto-cjk/copyright")
EXTRA = (
    "特征图通道卷积核池化热力图激活梯度权重像素输入输出层网络模型类别预测概率训练测试准确率"
    "，。：；！？（）“”‘’、—…·×→√²–⚠■"
)


def characters() -> str:
    texts = [EXTRA, "".join(chr(c) for c in range(32, 127))]
    texts.append((ROOT / "cnnviz_widgets/locale/zh/LC_MESSAGES/cnnviz_widgets.po").read_text())
    for path in sorted((ROOT / "notebooks" / "zh").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            texts.append("".join(cell["source"]))
    return "".join(sorted({c for text in texts for c in text if c.isprintable()}))


def main() -> int:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    if not SOURCE.is_file():
        print(f"{SOURCE} not found: apt-get install fonts-noto-cjk", file=sys.stderr)
        return 1
    font = TTFont(SOURCE, fontNumber=SC_INDEX, lazy=False)
    options = subset.Options()
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.layout_features = ["*"]
    subsetter = subset.Subsetter(options)
    text = characters()
    subsetter.populate(text=text)
    subsetter.subset(font)
    # A modified font gets its own name (OFL practice), and matplotlib then cannot confuse it
    # with an installed full Noto Sans CJK.
    for record in font["name"].names:
        if record.nameID in (1, 4, 16):
            record.string = FAMILY
        elif record.nameID == 6:
            record.string = FAMILY.replace(" ", "")
    if "CFF " in font:
        font["CFF "].cff.fontNames = [FAMILY.replace(" ", "")]
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    font.save(TARGET)
    if LICENCE.is_file():
        shutil.copyfile(LICENCE, TARGET.parent / "NOTO-CJK-COPYRIGHT.txt")
    size = TARGET.stat().st_size
    print(f"wrote {TARGET.relative_to(ROOT)}: {len(text)} characters, {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
