"""MNIST from its IDX files vs the same images as a folder of PNGs: same architecture, seed and
flags, test accuracies compared.

    python benchmarks/mnist_png.py > /tmp/bench_mnist_png.txt      # ~20-30 minutes on 2 cores

Writes (once, into ``--work``, default /tmp/qenas-mnist-png, reused when complete) the official 60,000
training and 10,000 test images read with ``enas.data.data_utils.read_mnist`` as grayscale PNGs
``<variant>/train/<digit>/<index>.png`` and ``<variant>/test/<digit>/<index>.png`` (a process pool),
then trains ``train_arc_mnist.py``'s CONFIG (architecture, filters, keep prob, aux heads; default
seed; ``--num_epochs``) twice, each in its own process, one after the other:

  (a) idx:    ``train_arc_mnist.py --data_path <--mnist>`` (validation: the LAST 5,000 training images)
  (b) folder: ``train_arc.py --dataset folder --data_path <work>/stratified --num_valid 5000`` with the
      same flags (train_arc.py's CONFIG equals train_arc_mnist.py's but for ``dataset``).

and prints both final test accuracies and their difference in points (target: within 0.3).

Caveat: the folder's validation split is drawn per class (stratified, 5,000 of the 60,000) while
MNIST's is the last 5,000, so the two train on slightly different 55,000 images (and the folder's
file list is class-sorted, so the same seed shuffles them into other batches). ``--variants exact``
adds (c): a folder whose ``valid/`` holds MNIST's last 5,000 (``train/`` the first 55,000), i.e.
the same split as (a); only the batch order and the PNG round trip (lossless) differ.
"""

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from enas.cli import tf_log  # noqa: E402

tf_log.set_tensorflow_defaults()  # enas.data imports TensorFlow
tf_log.filter_cpp_logs()  # its start-up banners off stderr

from enas.data.data_utils import read_mnist  # noqa: E402

CHUNK = 2000


def write_chunk(job):
    from PIL import Image

    folder, images, labels, first = job
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image, "L").save(Path(folder) / str(int(label)) / f"{first + i:05d}.png")
    return len(images)


def write_folders(work: Path, mnist, variants, processes):
    """``{variant: folder}``; each written unless ``<folder>/done.json`` marks it complete."""
    (x_tr, y_tr), (x_te, y_te) = read_mnist(mnist, download=False)
    n_train = len(x_tr) - 5000
    layouts = {"stratified": {"train": (0, len(x_tr)), "test": None},
               "exact": {"train": (0, n_train), "valid": (n_train, len(x_tr)), "test": None}}
    folders = {}
    for variant in variants:
        root = work / variant
        folders[variant] = root
        stamp = dict(mnist=str(Path(mnist).resolve()), layout={k: v for k, v in layouts[variant].items()})
        if (root / "done.json").exists() and json.loads((root / "done.json").read_text()) == json.loads(json.dumps(stamp)):
            print(f"Folder {variant}: reusing {root}")
            continue
        start, jobs = time.time(), []
        for split, span in layouts[variant].items():
            x, y, first = (x_te, y_te, 0) if span is None else (x_tr[span[0]:span[1]], y_tr[span[0]:span[1]], span[0])
            for digit in range(10):
                (root / split / str(digit)).mkdir(parents=True, exist_ok=True)
            jobs += [(str(root / split), x[s:s + CHUNK], y[s:s + CHUNK], first + s) for s in range(0, len(x), CHUNK)]
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            written = sum(pool.map(write_chunk, jobs))
        (root / "done.json").write_text(json.dumps(stamp))
        print(f"Folder {variant}: wrote {written} PNGs to {root} in {time.time() - start:.0f} s")
    return folders


def flags_of(config):
    """Command-line flags for a script CONFIG block (minus ``dataset``)."""
    out = []
    for key, value in config.items():
        if key == "dataset":
            continue
        out.append(f"--{key}" if value is True else f"--no{key}" if value is False else f"--{key}={value}")
    return out


def train(name, cmd, work):
    """Run ``cmd`` (logging to ``<work>/<name>.log``); returns (test accuracy, valid accuracy, epoch seconds)."""
    print(f"({name}) {' '.join(repr(c) if ' ' in c else c for c in cmd)}", flush=True)
    log = work / f"{name}.log"
    start = time.time()
    with open(log, "w") as out:
        status = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    text = log.read_text()
    if status != 0:
        sys.exit(f"{name} failed (status {status}):\n" + "\n".join(text.splitlines()[-30:]))
    for line in text.splitlines():
        if line.startswith("Dataset:"):
            print("    " + line)
    test = float(re.findall(r"Final test_accuracy: ([0-9.]+)", text)[-1])
    valid = [float(v) for v in re.findall(r"valid_accuracy: ([0-9.]+)", text)]
    epochs = [float(v) for v in re.findall(r"^Epoch \d+: ([0-9.]+) s$", text, re.M)]
    print(f"    test {test:.4f}, valid per epoch {valid}, epochs {epochs} s, run {time.time() - start:.0f} s", flush=True)
    return test


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/qenas-mnist-png", help="PNG folders and run folders (not in the repo)")
    parser.add_argument("--mnist", default="/work/shared/data/mnist", help="the official IDX files")
    parser.add_argument("--num_epochs", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["stratified"], choices=["stratified", "exact"])
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    args = parser.parse_args()
    work = Path(args.work).resolve()
    if work == ROOT or ROOT in work.parents:
        sys.exit(f"--work {work} is inside the repository; pick a folder elsewhere")
    work.mkdir(parents=True, exist_ok=True)
    folders = write_folders(work, args.mnist, args.variants, args.processes)

    import train_arc
    import train_arc_mnist

    same = {k: v for k, v in train_arc.CONFIG.items() if k != "dataset"} == train_arc_mnist.CONFIG
    print(f"train_arc.py's CONFIG == train_arc_mnist.py's but for dataset: {same}")
    common = flags_of({**train_arc_mnist.CONFIG, "num_epochs": args.num_epochs}) + ["--reset_output_dir"]
    python = sys.executable
    results = {"idx": train("idx", [python, "train_arc_mnist.py", "--data_path", str(Path(args.mnist).resolve()),
                                    "--output_dir", str(work / "run-idx")] + common, work)}
    for variant, folder in folders.items():
        num_valid = ["--num_valid", "5000"] if variant == "stratified" else []
        results[variant] = train(variant, [python, "train_arc.py", "--dataset", "folder", "--data_path", str(folder),
                                           "--output_dir", str(work / f"run-{variant}")] + num_valid + common, work)
    print(f"Final test accuracies after {args.num_epochs} epochs (same arc, seed, flags):")
    print(f"    idx (train_arc_mnist.py):  {results['idx']:.4f}")
    for variant in folders:
        diff = 100 * (results[variant] - results["idx"])
        print(f"    folder {variant:>10}:     {results[variant]:.4f}  difference {diff:+.2f} points "
              f"({'within' if abs(diff) <= 0.3 else 'OUTSIDE'} 0.3)")


if __name__ == "__main__":
    main()
