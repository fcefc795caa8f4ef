"""Running a child: the one run loop with its epochs, evaluation and NaN stop (``run_loop``),
the run folder (config record, log, checkpoints; ``run_dir``) with its one-process lock
(``folder_lock``), atomic file writes (``atomic``), the original's log lines (``log_format``),
TensorBoard scalars (``summaries``), the ``tf.distribute`` strategy and workers' roles
(``distribute``), fixed-architecture training (``train_fixed``) and a finished run folder back
to its trained model (``restore``)."""
