"""Check that the README's main command printed the main table: a header and one row a method.

The default experiment ends with a Markdown table whose header starts ``| method |``; the check
fails (exit 1) when it is missing or has no rows, so a run that dies early cannot pass CI.
"""

import sys
from pathlib import Path

lines = Path(sys.argv[1]).read_text(encoding="utf-8", errors="replace").splitlines()
header = [k for k, line in enumerate(lines) if line.startswith("| method |")]
if not header:
    sys.exit("main command: no main table ('| method | ...') in its output")
rows = [line for line in lines[header[-1] + 2 :] if line.startswith("|")]
if len(rows) < 2:
    sys.exit(f"main command: the main table has {len(rows)} rows")
print(f"main command: main table printed with {len(rows)} rows")
