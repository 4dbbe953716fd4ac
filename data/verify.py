"""Check the data files against data/README.md's SHA-256 list: python data/verify.py [ROOT]."""

import hashlib
import re
import sys
from pathlib import Path

from sivae_core.book import data_root

root = Path(sys.argv[1]) if len(sys.argv) > 1 else data_root()
lines = re.findall(r"^([0-9a-f]{64})  (\S+)$", (Path(__file__).parent / "README.md").read_text(), re.M)
bad = 0
for digest, rel in lines:
    p = root / rel
    if not p.exists():
        print(f"missing  {p}")
        continue
    ok = hashlib.sha256(p.read_bytes()).hexdigest() == digest
    bad += not ok
    print(f"{'ok' if ok else 'MISMATCH'}  {p}")
sys.exit(1 if bad else 0)
