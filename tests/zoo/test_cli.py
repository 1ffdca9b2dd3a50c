"""``python -m dmm.zoo``'s command line: help of every command, the names MODEL_ZOO.md gives."""

from __future__ import annotations

import pytest

from dmm.cli import run
from dmm.zoo import Zoo
from dmm.zoo.__main__ import main

from .conftest import REPO


@pytest.mark.parametrize("command", ["", "list", "fetch", "check"])
def test_every_help_names_the_command_and_debug(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"] if command else ["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith(f"usage: python -m dmm.zoo {command}".rstrip()) and "--debug" in out


def test_model_zoo_md_gives_every_name_and_the_readme_starts_with_fetch():
    text = (REPO / "MODEL_ZOO.md").read_text()
    assert [name for name in Zoo().names() if f"`{name}`" not in text] == []
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Reproducing the paper on YouTube-VOS\n", 1)[1]
    assert section.lstrip().startswith("```bash\npython -m dmm.zoo fetch --for eval-r50")


def test_unknown_names_and_nothing_to_fetch_are_named(tmp_path, capsys):
    assert run(main, ["fetch", "--root", str(tmp_path), "ytb_255_51"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown file 'ytb_255_51'") and "ytb_255_50_matchloss_epo13" in err
    assert run(main, ["fetch", "--root", str(tmp_path)]) == 2
    assert "--for (eval-r50, train" in capsys.readouterr().err
    assert not (tmp_path / "experiments").exists()
