"""The child network ENAS trains, fixed or shared by a search: shared layers and weights
(``common_ops``), the cell's ops (``micro_ops``), the cell (``micro_cell``) and the whole
network (``micro_child``), the stable weight paths that checkpoints and exports use
(``layer_paths``), the compiled training and evaluation steps that serve every sampled
architecture (``child_trainer``) and their per-replica helpers under ``tf.distribute``
(``replicas``)."""
