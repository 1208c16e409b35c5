"""What the API does, as typed functions. No HTTP here: routes call these, and these
raise :mod:`eleva.errors` exceptions that the error handlers turn into responses."""
