# Read by the flask CLI (python-dotenv). Secrets and local overrides go in .env.
FLASK_APP=wsgi
ELEVA_ENV=development
