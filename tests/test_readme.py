"""The README's Python examples run as written (with fewer epochs), and print what it says they print."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FEW_EPOCHS = 2  # examples that claim no printed output train this many epochs
CLAIM = re.compile(r"^print\(.*#\s*prints (?P<text>.+?)\s*$", re.MULTILINE)  # print(...)  # prints TEXT


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def shortened(code: str) -> str:
    """The example with every max_epochs (a config key or a keyword argument) set to FEW_EPOCHS."""
    return re.sub(r"""(max_epochs["']?\s*[:=]\s*)\d+""", rf"\g<1>{FEW_EPOCHS}", code)


def test_the_readme_has_python_examples():
    blocks = python_blocks()
    assert len(blocks) >= 4 and all("import trainwell" in b or "from trainwell" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index, capsys):
    code = python_blocks()[index]
    claims = [m.group("text") for m in CLAIM.finditer(code)]
    # an example whose printed output the README quotes runs in full, so the quote stays true
    exec(compile(code if claims else shortened(code), f"README.md python block {index + 1}", "exec"), {})
    printed = capsys.readouterr().out
    for text in claims:
        assert text in printed, f"the README says this prints {text!r}; it printed {printed!r}"


def test_shortening_touches_only_epoch_counts():
    code = 'config={"train": {"max_epochs": 30}}; TrainwellClassifier(max_epochs=40, lr=3)'
    assert shortened(code) == 'config={"train": {"max_epochs": 2}}; TrainwellClassifier(max_epochs=2, lr=3)'
