"""ENAS micro architecture search over quantized networks on MNIST.

    python search_arc_mnist.py --data_path ../shared/data/mnist >> mnist_search.txt

Then train the best architecture it prints:  python train_arc_mnist.py -fixed_arc "..."
Edit CONFIG below to change the defaults; any key is also a flag (--help lists them).
"""

from enas import cli

CONFIG = dict(
    # data and run
    data_path="./data/mnist",
    output_dir="./output-mnist-search",
    reset_output_dir=False,
    num_valid=5000,
    max_train_examples=0,
    max_test_examples=0,
    batch_size=128,
    eval_batch_size=100,
    num_epochs=10,
    log_every=25,
    eval_every_epochs=1,
    seed=1,
    num_sampled_arcs=10,
    # shared child (search space): small, so a default search fits 2 CPU cores
    child_num_layers=0,  # two reduction cells only (28 -> 14 -> 7)
    child_num_cells=3,
    child_reduction_layers="",  # e.g. "2,5"; empty: ENAS rule, at 1/3 and 2/3 of the depth
    child_out_filters=8,
    child_keep_prob=1.0,
    child_drop_path_keep_prob=1.0,
    child_use_aux_heads=False,
    # precision
    child_quantization="ternary",  # binary | ternary | quantized | float
    child_bits=4,
    child_quantize_stem=False,
    child_quantize_classifier=False,
    child_precision_overrides="",
    # child optimisation
    child_optimizer="momentum",
    child_lr_max=0.05,
    child_lr_min=5e-4,
    child_lr_T_0=10,
    child_lr_T_mul=2,
    child_lr_cosine=True,
    child_l2_reg=1e-4,
    child_grad_bound=5.0,
    child_xla=False,  # compile the search step with XLA (for GPUs; slower on CPU)
    child_augment=False,
    child_cutout_size=0,
    # controller
    controller_type="micro",  # micro (ENAS REINFORCE) | random
    controller_lr=0.0035,
    controller_lstm_size=64,
    controller_tanh_constant=1.10,
    controller_op_tanh_reduce=2.5,
    controller_temperature=0.0,
    controller_entropy_weight=1e-4,
    controller_bl_dec=0.99,
    controller_train_steps=30,
    controller_num_aggregate=10,
)

if __name__ == "__main__":
    raise SystemExit(cli.main(CONFIG, dataset="mnist", mode="search"))
