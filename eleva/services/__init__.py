"""What the API does, as typed functions. No HTTP here: routes call these, and these
raise :mod:`eleva.core.errors` exceptions that eleva.http.errors turns into responses."""
