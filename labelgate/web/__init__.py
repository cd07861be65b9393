"""The review web app: ``app.create_app`` (FastAPI, Jinja2 pages, JSON API) and ``server`` (how it is run)."""
