"""Train one quantized ENAS micro architecture on CIFAR-10 from scratch (ENAS final settings).

    python train_arc_cifar.py -fixed_arc "0 2 0 0 ..." --data_path ./data/cifar10 >> cifar_arc.txt

Edit CONFIG below to change the defaults; any key is also a flag (--help lists them).
"""

from enas import cli

CONFIG = dict(
    # data and run
    data_path="./data/cifar10",
    output_dir="./output-cifar-arc",
    reset_output_dir=False,
    num_valid=5000,  # 0: train on all 50,000 images, as ENAS's final run
    max_train_examples=0,
    max_test_examples=0,
    batch_size=144,
    eval_batch_size=100,
    num_epochs=630,
    log_every=50,
    eval_every_epochs=1,
    seed=1,
    # architecture: the ENAS paper's final CIFAR-10 cell
    child_fixed_arc="0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1",
    child_num_layers=15,
    child_num_cells=0,  # nodes per cell (B); 0: from the arc's length (8 * B integers)
    child_reduction_layers="",  # e.g. "2,5"; empty: ENAS rule, at 1/3 and 2/3 of the depth
    child_out_filters=36,
    child_keep_prob=0.8,
    child_drop_path_keep_prob=0.6,
    child_use_aux_heads=True,
    # precision
    child_quantization="ternary",  # binary | ternary | quantized | float
    child_bits=4,
    child_quantize_stem=False,
    child_quantize_classifier=False,
    child_precision_overrides="",
    # optimisation
    child_optimizer="momentum",
    child_lr_max=0.05,
    child_lr_min=1e-4,
    child_lr_T_0=10,
    child_lr_T_mul=2,
    child_lr_cosine=True,
    child_l2_reg=2e-4,
    child_grad_bound=5.0,
    child_augment=True,
    child_cutout_size=0,  # 16 for ENAS's cutout result
)

if __name__ == "__main__":
    raise SystemExit(cli.main(CONFIG, dataset="cifar10", mode="train"))
