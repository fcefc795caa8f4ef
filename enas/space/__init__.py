"""The search space, with no TensorFlow: the ops and decisions of the ENAS micro cell
(``search_space``), architectures and their ``"0 2 1 4 ..."`` strings, mixed-precision ones
included (``arc``), and the precisions a convolution can have with the policy that assigns them
to the parts of a network (``precision``). Everything above builds, samples, costs or draws
architectures through these."""
