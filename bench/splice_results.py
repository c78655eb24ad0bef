#!/usr/bin/env python3
"""Replaces one section of bench/RESULTS.md (between <!-- BEGIN name --> and <!-- END name -->)
with the contents of a file: splice_results.py NAME FILE [RESULTS.md]."""
import sys

name, src = sys.argv[1], sys.argv[2]
path = sys.argv[3] if len(sys.argv) > 3 else "bench/RESULTS.md"
begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
text = open(path).read()
body = open(src).read().strip("\n")
i, j = text.find(begin), text.find(end)
if i < 0 or j < i:
    text = text.rstrip("\n") + f"\n\n{begin}\n{body}\n{end}\n"
else:
    text = text[: i + len(begin)] + "\n" + body + "\n" + text[j:]
tmp = path + ".tmp"
open(tmp, "w").write(text)
import os

os.replace(tmp, path)
print(f"{path}: section '{name}' updated from {src}")
