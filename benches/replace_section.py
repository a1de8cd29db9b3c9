#!/usr/bin/env python3
"""Replaces the generated section NAME of BENCHMARKS.md (between `<!-- NAME:begin -->` and
`<!-- NAME:end -->`) with the contents of FILE, or appends it under HEADING when there is none yet.

    replace_section.py BENCHMARKS.md NAME FILE HEADING
"""
import sys


def main(path, name, section_file, heading):
    section = open(section_file).read()
    text = open(path).read()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{section}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    open(path, "w").write(text)


if __name__ == "__main__":
    main(*sys.argv[1:5])
