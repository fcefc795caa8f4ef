"""Streaming an image folder from disk: peak memory of a full epoch, and training speed against
the same images in memory.

    python benchmarks/folder_stream.py > /tmp/bench_stream.txt    # ~20-30 minutes on 2 cores

The data (made once into ``--work``, default /tmp/qenas-stream, and reused when complete): a folder
of 20,000 PNG images 96x96x3 in 4 class sub-folders (``tests/fixtures_data.pattern_images``
content: a bright band per class over noise, learnable), written by a process pool, and the same
images as one uint8 array (``images.npy``, ``labels.npy``).

(a) Peak memory: ``train_arc.py --data_path <folder> --num_epochs 1`` (its CONFIG unchanged: 10%
    validation per class, 18,000 training images, batch 32, aux heads) in a child process; its
    ``ru_maxrss`` from ``os.wait4`` (the whole run: start-up, scan, one epoch, evaluation, export
    summary), in GiB. Target: under 2 GiB.
(b) Speed: in THIS process, the same child (train_arc.py's CONFIG) trained on the same training /
    validation split (``--speed_examples`` images, ``--speed_epochs`` epochs) streamed from the
    folder (``train_fixed.run(config, data=<folder DataSplits>)``, with each ``--caches`` value:
    none, ``memory``, a file) and from memory (``sources.from_arrays`` of the same images),
    alternated A B C D, D C B A, ... ``--repeats`` rounds. A run's speed is its steps per epoch
    over the median seconds of its epochs 2+ (the ``Epoch N: X.X s`` lines: training steps only;
    epoch 1 also traces the step and fills a cache), and its CPU time per step (this process's,
    decoding threads included) over epochs 2 .. E-1, which other jobs on a shared machine disturb
    less than wall time. The table gives the medians over rounds and the ratios streamed / in
    memory. Target: >= 0.9.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from enas.cli import tf_log  # noqa: E402

tf_log.set_tensorflow_defaults()  # as the scripts, before TensorFlow is imported

import numpy as np  # noqa: E402

from tests.fixtures_data import pattern_images  # noqa: E402

CHUNK = 500


def write_chunk(job):
    """Write images ``start .. start + n`` (seeded by the chunk) as PNGs; returns them."""
    from PIL import Image

    k, start, n, folder, classes, size = job
    x, y = pattern_images(n, classes, size, size, 3, seed=1000 + k)
    for i, (image, label) in enumerate(zip(x, y)):
        Image.fromarray(image, "RGB").save(Path(folder) / f"class_{label}" / f"img_{start + i:05d}.png")
    return x, y


def make_data(work: Path, count, classes, size, processes):
    """The folder and the array (reused when ``work/done.json`` says they are complete)."""
    folder, stamp = work / "images", work / "done.json"
    want = dict(count=count, classes=classes, size=size)
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        print(f"Data: reusing {folder} and {work}/images.npy")
    else:
        start = time.time()
        for c in range(classes):
            (folder / f"class_{c}").mkdir(parents=True, exist_ok=True)
        jobs = [(k, s, min(CHUNK, count - s), str(folder), classes, size) for k, s in enumerate(range(0, count, CHUNK))]
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            parts = pool.map(write_chunk, jobs)
        np.save(work / "images.npy", np.concatenate([x for x, _ in parts]))
        np.save(work / "labels.npy", np.concatenate([y for _, y in parts]).astype(np.int32))
        stamp.write_text(json.dumps(want))
        print(f"Data: wrote {count} PNGs {size}x{size}x3 ({classes} classes) to {folder} with {processes} "
              f"processes in {time.time() - start:.0f} s")
    return folder, np.load(work / "images.npy"), np.load(work / "labels.npy")


def peak_rss(folder, work):
    """ru_maxrss (GiB) and wall time of one epoch of train_arc.py on the folder, in a child process."""
    cmd = [sys.executable, str(ROOT / "train_arc.py"), "--data_path", str(folder), "--num_epochs", "1",
           "--output_dir", str(work / "rss-run"), "--reset_output_dir"]
    print("(a) " + " ".join(cmd), flush=True)
    start = time.time()
    with open(work / "rss-run.log", "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    lines = (work / "rss-run.log").read_text().splitlines()
    if status != 0:
        sys.exit(f"train_arc.py failed (status {status}):\n" + "\n".join(lines[-30:]))
    for line in lines:
        if line.startswith(("Dataset:", "Training:", "Epoch 1:", "Final test", "valid_accuracy")):
            print("    " + line)
    return usage.ru_maxrss / 2 ** 20, time.time() - start


def speed_runs(folder, x, y, args, work):
    """``{name: [steps/s of the last epoch, one per repeat]}``, names ``memory`` and ``stream`` /
    ``stream+<cache>``, run alternately in this process."""
    import train_arc
    from enas.cli import script
    from enas.config.run_config import RunConfig
    from enas.data import sources
    from enas.run import train_fixed

    settings = script.settings_of(train_arc.CONFIG, "train", None)
    for key in ("dataset", "from_config"):
        settings.pop(key)
    settings.update(num_epochs=args.speed_epochs, reset_output_dir=True, eval_every_epochs=args.speed_epochs,
                    log_every=10 ** 6)
    streamed = sources.load_source("folder", folder, num_valid=settings["num_valid"], max_train=args.speed_examples)
    index = lambda files: np.array([int(Path(f).stem[4:]) for f in files])  # noqa: E731 - img_<index>.png
    tr, va = index(streamed.train.files), index(streamed.valid.files)
    in_memory = sources.from_arrays(x[tr], y[tr], x_valid=x[va], y_valid=y[va])
    assert np.array_equal(in_memory.train.labels, streamed.train.labels)
    runs = [("memory", "arrays", in_memory, "")] + [
        ("stream" + (f"+{c}" if c else ""), "folder", streamed, c) for c in args.caches]
    cache_file = work / "cache" / "train"  # --data_cache <file prefix>, emptied before each run
    speeds = {name: [] for name, *_ in runs}
    for repeat in range(args.repeats):
        for name, dataset, data, cache in runs if repeat % 2 == 0 else runs[::-1]:
            if cache == "file":
                shutil.rmtree(cache_file.parent, ignore_errors=True)
                cache_file.parent.mkdir()
            config = RunConfig.from_settings({**settings, "data_cache": str(cache_file) if cache == "file" else cache,
                                              "output_dir": str(work / f"speed-{name}")}, "train", dataset)
            epochs, cpu = [], []

            def log(line):  # "Epoch N: X.X s" ends epoch N (its steps, checkpoint; the last: evaluation)
                if line.startswith("Epoch") and line.endswith(" s"):
                    epochs.append(float(line.split(":")[1].split()[0]))
                    cpu.append(time.process_time())

            train_fixed.run(config, log=log, data=data)
            steps = config.training.steps_per_epoch(len(data.train))
            cpu_ms = 1000 * statistics.median(np.diff(cpu)[:-1]) / steps  # epochs 2 .. E-1
            speeds[name].append((steps / statistics.median(epochs[1:]), cpu_ms))
            print(f"    round {repeat + 1} {name:>14}: {steps} steps/epoch, epochs "
                  f"{', '.join(f'{e:.1f}' for e in epochs)} s -> {speeds[name][-1][0]:.2f} steps/s (epochs 2+), "
                  f"{cpu_ms:.0f} CPU ms/step (epochs 2-{len(epochs) - 1})", flush=True)
    return speeds, len(streamed.train), config.training.batch_size


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/qenas-stream", help="data and run folders (not in the repo)")
    parser.add_argument("--num_images", type=int, default=20000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--speed_examples", type=int, default=4000, help="--max_train_examples of the speed runs")
    parser.add_argument("--speed_epochs", type=int, default=4, help="at least 3")
    parser.add_argument("--repeats", type=int, default=2, help="A B (A B ...) rounds of the speed runs")
    parser.add_argument("--caches", nargs="*", default=["", "memory", "file"],
                        help="--data_cache values of the streamed speed runs ('' none, file: a file in --work)")
    parser.add_argument("--skip_rss", action="store_true")
    parser.add_argument("--skip_speed", action="store_true")
    args = parser.parse_args()
    tf_log.filter_cpp_logs()  # TensorFlow's start-up banners off stderr, as in the scripts
    work = Path(args.work).resolve()
    if work == ROOT or ROOT in work.parents:
        sys.exit(f"--work {work} is inside the repository; pick a folder elsewhere")
    work.mkdir(parents=True, exist_ok=True)
    folder, x, y = make_data(work, args.num_images, args.classes, args.size, args.processes)
    print(f"Array: {x.shape} {x.dtype} ({x.nbytes / 2 ** 20:.0f} MiB), labels {np.bincount(y).tolist()}", flush=True)
    if not args.skip_rss:
        gib, seconds = peak_rss(folder, work)
        print(f"(a) peak RSS of one epoch of train_arc.py on the folder: {gib:.2f} GiB "
              f"({'meets' if gib < 2 else 'MISSES'} < 2 GiB); run {seconds:.0f} s", flush=True)
    if not args.skip_speed:
        print("(b) speed, alternating:", flush=True)
        speeds, num_train, batch = speed_runs(folder, x, y, args, work)
        med = {name: [statistics.median(v) for v in zip(*values)] for name, values in speeds.items()}
        print(f"(b) {num_train} training images, batch {batch}, {args.speed_epochs} epochs, medians over "
              f"{args.repeats} rounds; ratio = streamed / in memory of steps/s (wall) and of steps per CPU second:")
        for name, (rate, cpu_ms) in med.items():
            ratio, cpu_ratio = rate / med["memory"][0], med["memory"][1] / cpu_ms
            verdict = "" if name == "memory" else (f"  ratio {ratio:.3f} ({'meets' if ratio >= 0.9 else 'MISSES'} "
                                                   f">= 0.9), CPU ratio {cpu_ratio:.3f}")
            print(f"    {name:>14}: {rate:6.2f} steps/s ({rate * batch:6.1f} images/s), {cpu_ms:4.0f} CPU ms/step{verdict}")


if __name__ == "__main__":
    main()
