"""What a child costs: the bit-accurate, larq-style summary of any Keras model (parameters, bits
per weight and activation, memory, MACs by precision; ``model_summary``) and the per-op cost
tables a search evaluates for any sampled architecture, equal to the summary of the built
network (``cost_table``), with the Pareto front of accuracy against cost."""
