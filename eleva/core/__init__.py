"""Layer 1, pure code: errors, passwords, tokens, images. No Flask app, no database."""
