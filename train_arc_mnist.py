"""Train one quantized ENAS micro architecture on MNIST from scratch.

    python train_arc_mnist.py -fixed_arc "0 2 1 4 ..." --data_path ../shared/data/mnist >> mnist_arc.txt

Edit CONFIG below to change the defaults; any key is also a flag (--help lists them).
"""

from enas import cli

CONFIG = dict(
    # data and run
    data_path="./data/mnist",
    output_dir="./output-mnist-arc",
    reset_output_dir=False,
    num_valid=5000,
    max_train_examples=0,
    max_test_examples=0,
    batch_size=128,
    eval_batch_size=100,
    num_epochs=30,  # two cosine periods (10 + 20 epochs)
    log_every=50,
    eval_every_epochs=1,
    seed=1,
    # architecture (normal cell then reduction cell, 4 integers per node)
    child_fixed_arc="1 2 0 0 1 1 0 1 1 1 0 0 1 1 1 3 0 1 1 0 1 4 1 1 2 0 1 3 1 3 1 2 1 0 1 0 3 1 1 0",
    child_num_layers=6,
    child_num_cells=0,  # nodes per cell (B); 0: from the arc's length (8 * B integers)
    child_reduction_layers="",  # e.g. "2,5"; empty: ENAS rule, at 1/3 and 2/3 of the depth
    child_out_filters=16,
    child_keep_prob=0.9,
    child_drop_path_keep_prob=1.0,
    child_use_aux_heads=True,
    # precision
    child_quantization="ternary",  # binary | ternary | quantized | float
    child_bits=4,
    child_quantize_stem=False,
    child_quantize_classifier=False,
    child_precision_overrides="",  # e.g. "original": 4-bit stem and layer 0, as the 2018 repo
    # optimisation
    child_optimizer="momentum",
    child_lr_max=0.05,
    child_lr_min=1e-4,
    child_lr_T_0=10,
    child_lr_T_mul=2,
    child_lr_cosine=True,
    child_l2_reg=1e-4,
    child_grad_bound=5.0,
    child_augment=False,
    child_cutout_size=0,
)

if __name__ == "__main__":
    raise SystemExit(cli.main(CONFIG, dataset="mnist", mode="train"))
