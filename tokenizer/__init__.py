"""SentencePiece BPE tokenizer with LLaMA's settings, and the token-shard format the trainer reads."""
