"""Users: own profile, privacy, password, deactivation, pictures, public profiles."""
