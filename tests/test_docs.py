"""The README and the documentation pages stay true to the code.

* Every command of the README's quick starts runs, as written, on generated data at a tiny budget:
  the shell blocks run in bash with ``python`` defined as this interpreter running the repository's
  script with a few budget flags appended (absl flags: the last value given wins); the Python block
  runs as it is.
* The configuration reference (docs/configuration.md) is what docs/make_config_reference.py writes
  from the code, and goes stale (the check fails) when a default changes.
* The README stays short, and every relative link of the README and the pages names a file that exists.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path


from tests.fixtures_data import write_image_folder, write_mnist_idx

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# Flags appended to each script of the quick starts: one short epoch on a few images, small children.
TINY = {
    "search": "--num_epochs 1 --controller_warmup_epochs 0 --controller_train_steps 2 --controller_num_aggregate 2 "
              "--num_sampled_arcs 2 --final_pick_samples 3 --max_train_examples 192 --batch_size 32 "
              "--reward_batch_size 32 --controller_reward_batches 1 --eval_batch_size 32 --log_every 3 "
              "--child_num_layers 0 --child_out_filters 4",
    "train": "--num_epochs 1 --max_train_examples 192 --batch_size 32 --eval_batch_size 32 --log_every 3 "
             "--child_num_layers 0 --child_out_filters 4",
    "export": "--max_test_examples 24 --representative_examples 16",
}
SCRIPT_KIND = {"search_arc_mnist.py": "search", "search_arc.py": "search", "train_arc_mnist.py": "train",
               "train_arc.py": "train", "export_arc.py": "export"}


def quick_start_blocks(kind):
    """``[(section title, code)]`` of the fenced ``kind`` blocks under the README's "Quick start" headings."""
    blocks = []
    for section in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        title = section.splitlines()[0]
        if title.startswith("Quick start"):
            blocks += [(title, code) for code in re.findall(rf"^```{kind}\n(.*?)^```", section, flags=re.S | re.M)]
    return blocks


def run_shell_block(code, cwd, num_valid):
    """Run one README shell block in bash in ``cwd``, ``python X.py`` being the repository's X.py at a tiny budget."""
    cases = "\n".join(f'    {script}) extra="{TINY[kind]}{" --num_valid " + num_valid if kind != "export" else ""}" ;;'
                      for script, kind in SCRIPT_KIND.items())
    prelude = f"""set -euo pipefail
python() {{
  local script="$1"; shift
  local extra=""
  case "$script" in
{cases}
    *) echo "the README runs a script this test does not know: $script" >&2; return 9 ;;
  esac
  "{sys.executable}" "{ROOT}/$script" "$@" $extra
}}
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(["bash", "-c", prelude + code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def test_quick_start_python_block_runs(tmp_path):
    (block,) = quick_start_blocks("python")
    done = subprocess.run([sys.executable, "-c", block[1]], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "quantized.keras").exists()
    assert "[4, None, 2, None, 1, None, 1]" in done.stdout  # bits per weight, layer by layer
    # the README's comment: another process loads the file after importing the three packages
    load = ("import keras, binarize, ternarize, quantize\n"
            "model = keras.models.load_model('quantized.keras')\n"
            "print([getattr(layer, 'bits_per_weight', None) for layer in model.layers])")
    loaded = subprocess.run([sys.executable, "-c", load], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "[4, None, 2, None, 1, None, 1]" in loaded.stdout


def test_quick_start_mnist_commands_run(tmp_path):
    """Search, train and export on MNIST as the README says, the data in ./data/mnist (generated IDX files)."""
    (title, code), = [b for b in quick_start_blocks("bash") if "MNIST" in b[0]]
    write_mnist_idx(tmp_path / "data" / "mnist", n_train=256, n_test=64)
    done = run_shell_block(code, tmp_path, num_valid="64")
    assert done.returncode == 0, f"{title}:\n{done.stderr[-3000:]}"
    arc = (tmp_path / "output-mnist-search" / "best_arc.txt").read_text().split()
    assert len(arc) == 24  # the MNIST search's B = 3 cells
    search_log = (tmp_path / "mnist_search.txt").read_text()
    assert "Epoch 1: Training controller" in search_log and "val_acc" in search_log
    train_log = (tmp_path / "mnist_arc.txt").read_text()
    assert "test_accuracy:" in train_log and "Int8 for TensorFlow Lite Micro: flash" in train_log
    assert (tmp_path / "model.qenas").stat().st_size > 0 and (tmp_path / "model.tflite").stat().st_size > 0


def test_quick_start_own_images_to_a_microcontroller(tmp_path):
    """The own-data quick start: an image folder, a search under RAM and flash budgets, training, and the
    int8 file run in TensorFlow Lite Micro."""
    (title, code), = [b for b in quick_start_blocks("bash") if "microcontroller" in b[0]]
    write_image_folder(tmp_path / "my_images", {"": 150}, num_classes=3, size=(28, 28), channels=1)
    done = run_shell_block(code, tmp_path, num_valid="0.2")
    assert done.returncode == 0, f"{title}:\n{done.stderr[-3000:]}"
    search_log = (tmp_path / "search.txt").read_text()
    assert "TensorFlow Lite Micro" in search_log and "ram" in search_log
    assert (tmp_path / "output-search" / "best_arc.txt").exists()
    assert "valid_accuracy:" in (tmp_path / "arc.txt").read_text()  # no test/ folder: the validation split
    assert re.search(r"TFLM: flash [\d,]+ bytes .*, tensor arena [\d,]+ bytes", done.stdout), done.stdout[-2000:]
    assert (tmp_path / "model.tflite").stat().st_size > 0


def anchors(page):
    """GitHub's anchors of a Markdown page's headings."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            for title in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def test_readme_is_short_and_its_links_exist():
    assert len(README.read_text().splitlines()) <= 200
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)]*))?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            linked = (page.parent / target) if target else page
            assert linked.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor:
                assert anchor in anchors(linked), f"{page.name} links to {target}#{anchor}, which has no such heading"


def load_reference_maker():
    spec = importlib.util.spec_from_file_location("make_config_reference", DOCS / "make_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_is_current():
    maker = load_reference_maker()
    assert maker.main(["--check"]) == 0, "docs/configuration.md is stale: run python docs/make_config_reference.py"


def test_configuration_reference_goes_stale_when_a_default_changes(monkeypatch):
    """A default changed in the typed configuration and not in the page fails the check above."""
    from enas.config import run_config

    maker = load_reference_maker()
    page = (DOCS / "configuration.md").read_text()
    assert "| `--controller_lr` | `0.03` |" in page
    monkeypatch.setattr(run_config.ControllerConfig.__dataclass_fields__["lr"], "default", 0.05)
    assert "| `--controller_lr` | `0.05` |" in maker.render()
    assert maker.main(["--check"]) == 1
