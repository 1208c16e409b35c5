"""Layer 2, data and outside services: engines and models, storage, fast reads."""
