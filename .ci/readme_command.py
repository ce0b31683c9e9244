"""Print the N-th ``bash`` code block of the README's "On a fresh machine" section.

CI runs exactly what the README tells a new user to type, so the two can never drift apart.
"""

import re
import sys
from pathlib import Path

readme, n = Path(sys.argv[1]).read_text(encoding="utf-8"), int(sys.argv[2])
section = readme.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
if len(blocks) < n:
    sys.exit(f"README: 'On a fresh machine' has {len(blocks)} bash blocks, wanted block {n}")
print(blocks[n - 1].strip())
