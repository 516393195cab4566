"""The metric tables document every name of `minimal_rl.metrics`, and nothing still uses the old prefix."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from minimal_rl.metrics import HOST_NAMES, PREFIX

REPO = Path(__file__).resolve().parents[2]
# Metric names under the old prefix (``minimal_rl/`` then a name, old or new): paths such as minimal_rl/table.py differ.
NAMES = sorted({*HOST_NAMES["verl"], *HOST_NAMES["trl"], "groups", "mini_batches", "filter_unavailable"})
OLD_METRIC = re.compile(r"minimal_rl/(\*|(" + "|".join(re.escape(n) for n in NAMES) + r")\b)")
# The changelog states the rename; this test module and test_metric_names.py use an old name on purpose.
ALLOWED = {"CHANGELOG.md", "tests/docs/test_metric_docs.py", "tests/verl_ext/test_metric_names.py"}


def test_verl_and_trl_pages_list_every_metric_of_their_host():
    verl_page = (REPO / "docs" / "verl-filtering.md").read_text(encoding="utf-8")
    trl_page = (REPO / "docs" / "trl.md").read_text(encoding="utf-8")
    assert sorted(n for n in HOST_NAMES["verl"] if f"`{n}`" not in verl_page) == []
    assert sorted(n for n in HOST_NAMES["trl"] if f"`{PREFIX}{n}`" not in trl_page) == []


def test_no_file_logs_or_reads_the_old_names():
    listing = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout")
    files = listing.stdout.split()
    stale = []
    for name in files:
        if name.endswith((".py", ".md", ".yaml", ".sh")) and name not in ALLOWED:
            text = (REPO / name).read_text(encoding="utf-8", errors="replace")
            stale += [f"{name}: {m.group(0)}" for m in OLD_METRIC.finditer(text)]
    assert stale == []
