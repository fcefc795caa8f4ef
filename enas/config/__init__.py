"""Typed configuration, with no TensorFlow: a run's whole configuration in one frozen object
(``run_config.RunConfig``: data, child, training, controller, cost, output and distribution
sections, their defaults, validation, flags and JSON), the child network's shape
(``child_config``) and the training recipe of each precision (``recipes``). Validation happens
here, before TensorFlow is imported, so bad settings fail within a second."""
