"""Auth: registration, login, token rotation, logout."""
