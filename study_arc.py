"""Does the search beat random, at equal size? Run the ENAS search and a weight-sharing random
search under one budget for each search seed, pick each one's best architectures on the whole
validation split, draw as many at random and as many of the ENAS picks' size, train them all from
scratch over several seeds, and report with confidence intervals and p-values (study.md,
study.json, study.png in the output folder; see enas/search/study.py).

    python study_arc.py --data_path ../shared/data/mnist >> mnist_study.txt
    python study_arc.py --dataset auto --data_path my_images/ --num_valid 0.1 >> study.txt

A killed study resumes where it stopped when rerun with the same command.
"""

from enas.cli.command import run_command
from enas.search.study import settings_of

# What the study changes from the defaults of enas/config/run_config.py and enas/search/study.py (data in
# ./data/<dataset>, output in ./output-<dataset>-study); flags override (--help lists them).
CONFIG = dict(
    dataset="mnist",  # mnist | cifar10 | folder | npz | auto (what --data_path holds)
    # each search: the small MNIST child of search_arc_mnist.py
    log_every=25,
    child_num_layers=0,
    child_num_cells=3,
    child_out_filters=8,
    child_lr_min=5e-4,
    batch_size=128,  # as search_arc_mnist.py (the reward has its own: --reward_batch_size)
)

FLAG_HELP = {
    "dataset": "mnist, cifar10, folder (images, one sub-folder per class), npz, or auto (what --data_path holds).",
    "data_path": "Folder with the dataset files (empty: ./data/<dataset>).",
    "output_dir": "The study's folder (empty: ./output-<dataset>-study); rerunning resumes it.",
    "study_seeds": "Seeds of the stand-alone trainings of every picked architecture, e.g. '1,2'.",
    "study_search_seeds": "Seeds of the searches: the ENAS and the random-controller search each run once per seed "
                          "(the unit the statistics compare), e.g. '1,2,3'.",
    "study_top_k": "Architectures per search: the best k of its final pick (and k drawn at random, k size-matched).",
    "study_size_tolerance": "The size-matched group: uniform architectures whose weight memory is within this "
                            "fraction of an ENAS pick's.",
    "train_epochs": "Epochs of each stand-alone training (the same budget for every architecture).",
    "study_train_batch_size": "Batch of each stand-alone training (0: the training recipe's for the cells' precision, "
                              "as train_arc_*.py uses, not the search's).",
    "num_epochs": "Epochs of each of the two searches.",
}


def main(settings):
    from enas.search.study import (  # checks every setting before TensorFlow loads
        Study,
        from_settings,
    )

    Study(*from_settings(settings)).run()


def cli():
    """The command `study_arc` (installed by pip) and `python study_arc.py`."""
    return run_command(settings_of(CONFIG), None, main, flag_help=FLAG_HELP, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
