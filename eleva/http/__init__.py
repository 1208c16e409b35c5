"""Layer 4, everything that knows about HTTP: the flask-smorest adapters, request
authentication, the one error map, headers and CORS, JSON, request fields and limits."""
