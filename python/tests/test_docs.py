"""Every Python example in docs/python.md and the README runs as written, against the session's Link
(the person approves at a real prompt while it waits); API hosts point at the local upstream."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

import pytest

from conftest import Link, setting

_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def examples() -> List[Tuple[str, str]]:
    repo = setting("PIPER_TEST_REPO")
    found: List[Tuple[str, str]] = []
    for doc in ("docs/python.md", "README.md"):
        with open(os.path.join(repo, doc), encoding="utf-8") as f:
            text = f.read()
        # The README's pyper-sdk example needs pyper-sdk itself (not installable here): only piper_link's run.
        found.extend((f"{doc}#{i + 1}", block) for i, block in enumerate(_BLOCK.findall(text)) if "from piper_link" in block)
    return found


def test_there_are_examples() -> None:
    names = [name for name, _ in examples()]
    assert len([n for n in names if n.startswith("docs/python.md")]) >= 9
    assert any(n.startswith("README.md") for n in names)


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_example_runs(name: str, code: str, link: Link, link_env: Dict[str, str], upstream: str) -> None:
    for stored in ("OPENAI_API_KEY", "GITHUB_TOKEN"):
        if stored not in link.stored:
            link.set_secret(stored, f"sk-docs-{stored.lower()}")
    source = code.replace("https://api.openai.com", upstream).replace("https://api.example.com", upstream)
    folder = tempfile.mkdtemp(prefix="piper-py-doc-")
    path = os.path.join(folder, "agent.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    child = subprocess.Popen([sys.executable, path], cwd=folder, env=link_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The person, deciding whatever the example asks for while it runs.
    while True:
        try:
            out, err = child.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            link.decide_pending()
    assert child.returncode == 0, f"{name} exited {child.returncode}:\n{out}\n{err}"
    assert "sk-docs-" not in out, f"{name} printed a value"
