"""Training of Multi-SPARC-Net: examples, losses, optimizer and checkpoints."""
