"""ENAS micro search and training over quantized child networks."""
