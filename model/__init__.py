"""The LLaMA model, the loader over token shards, the training loop and generation."""
