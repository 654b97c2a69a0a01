"""Message catalogs: list the texts the package translates, check the .po files, compile .mo.

Usage::

    .venv/bin/python tools/compile_catalogs.py            # check, then compile every .po
    .venv/bin/python tools/compile_catalogs.py --missing  # msgids in the code with no entry

The texts are the string literals passed to ``_()`` / ``gettext_()`` / ``ngettext()`` / ``N_()`` in
``cnnviz_widgets/`` (read with :mod:`ast`, so implicit concatenation is joined as Python
joins it). ``.po`` files are read and ``.mo`` files written with the logic of CPython's
``Tools/i18n/msgfmt.py`` (GNU .mo format, little-endian, sorted keys), so no gettext tools are
needed. The ``.mo`` files are committed: the package reads them at run time.
"""

from __future__ import annotations

import argparse
import ast
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnnviz_widgets"
LOCALE = PACKAGE / "locale"
FUNCTIONS = {"_", "gettext_", "ngettext", "N_"}


def source_messages(package: Path = PACKAGE) -> dict[str, list[str]]:
    """``{msgid: ["path:line", ...]}`` for every literal passed to a translation function."""
    found: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in FUNCTIONS:
                continue
            literals = node.args[:2] if node.func.id == "ngettext" else node.args[:1]
            for arg in literals:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(arg.value, []).append(where)
    return found


def read_po(path: Path) -> dict[str, str]:
    """``{msgid: msgstr}`` of a .po file (plural forms kept as ``msgid\\0plural`` keys)."""
    messages: dict[str, str] = {}
    section = None
    msgid = msgid_plural = ""
    msgstr: dict[int, str] = {}
    fuzzy = False

    def flush() -> None:
        nonlocal msgid, msgid_plural, msgstr, fuzzy
        if section is not None and not fuzzy and any(msgstr.values()):
            key = f"{msgid}\0{msgid_plural}" if msgid_plural else msgid
            value = "\0".join(msgstr[i] for i in sorted(msgstr)) if msgid_plural else msgstr[0]
            messages[key] = value
        msgid, msgid_plural, msgstr, fuzzy = "", "", {}, False

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            if section == "msgstr":
                flush()
                section = None
            fuzzy = True
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid_plural"):
            section, text = "msgid_plural", line[len("msgid_plural") :]
        elif line.startswith("msgid"):
            if section == "msgstr":
                flush()
            section, text = "msgid", line[len("msgid") :]
        elif line.startswith("msgstr["):
            index = int(line[len("msgstr[") : line.index("]")])
            section, text = "msgstr", line[line.index("]") + 1 :]
            msgstr[index] = ""
        elif line.startswith("msgstr"):
            section, text = "msgstr", line[len("msgstr") :]
            msgstr[0] = ""
        else:
            text = line
        value = ast.literal_eval(text.strip())
        if section == "msgid":
            msgid += value
        elif section == "msgid_plural":
            msgid_plural += value
        elif section == "msgstr":
            msgstr[max(msgstr)] += value
    if section == "msgstr":
        flush()
    return messages


def write_mo(messages: dict[str, str], path: Path) -> None:
    """Write ``messages`` as a GNU .mo file (the layout msgfmt.py writes)."""
    keys = sorted(messages)
    ids = strs = b""
    offsets = []
    for key in keys:
        encoded_id, encoded_str = key.encode("utf-8"), messages[key].encode("utf-8")
        offsets.append((len(ids), len(encoded_id), len(strs), len(encoded_str)))
        ids += encoded_id + b"\0"
        strs += encoded_str + b"\0"
    start_ids = 7 * 4 + 16 * len(keys)
    start_strs = start_ids + len(ids)
    id_table, str_table = [], []
    for id_offset, id_length, str_offset, str_length in offsets:
        id_table += [id_length, id_offset + start_ids]
        str_table += [str_length, str_offset + start_strs]
    output = struct.pack(
        "Iiiiiii", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + len(keys) * 8, 0, 0
    )
    output += struct.pack(f"{len(id_table)}i", *id_table)
    output += struct.pack(f"{len(str_table)}i", *str_table)
    output += ids + strs
    path.write_bytes(output)


def missing(po: Path) -> list[str]:
    """Msgids used in the code that ``po`` does not translate."""
    have = {key.split("\0")[0] for key in read_po(po)}
    return [m for m in source_messages() if m not in have]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missing", action="store_true", help="list untranslated msgids only")
    args = parser.parse_args(argv)
    status = 0
    for po in sorted(LOCALE.glob("*/LC_MESSAGES/*.po")):
        absent = missing(po)
        for message in absent:
            print(f"{po.relative_to(ROOT)}: no translation for {message!r}", file=sys.stderr)
        status |= bool(absent)
        if not args.missing:
            mo = po.with_suffix(".mo")
            write_mo(read_po(po), mo)
            print(f"wrote {mo.relative_to(ROOT)} ({len(read_po(po)) - 1} messages)")
    return status


if __name__ == "__main__":
    sys.exit(main())
