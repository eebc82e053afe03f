"""benchmarks/versus_commit.py: a commit's package imported renamed beside this checkout, its families built and
timed in the same process (here HEAD against the working tree, one tiny round)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks import versus_commit  # noqa: E402


def has_history() -> bool:
    probe = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "HEAD"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not has_history(), reason="needs the git history of this checkout")
def test_a_commit_is_imported_under_its_own_name_and_timed_beside_the_checkout(tmp_path, capsys):
    package = versus_commit.import_commit("HEAD", tmp_path)
    assert package.__name__ == "wavezoo_at_HEAD" and Path(package.__file__).is_relative_to(tmp_path)
    model = package.create_model("elman", input_size=2, output_size=2, hidden_size=4)
    assert type(model).__module__.startswith("wavezoo_at_HEAD.")  # its own registry, not this checkout's
    versus_commit.main(["HEAD", "--families", "elman", "--rounds", "1", "--min-run-time", "0.01"])
    out = capsys.readouterr().out
    assert "| family | before | after | before / after |" in out and out.count("| elman |") == 1


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(SystemExit, match="--families \\['nope'\\] unknown"):
        versus_commit.main(["HEAD", "--families", "nope"])
    with pytest.raises(SystemExit, match="git archive 'no-such-rev' failed"):
        versus_commit.main(["no-such-rev", "--families", "elman"])
