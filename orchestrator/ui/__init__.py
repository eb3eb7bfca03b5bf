"""The review web app (``orchestrator ui``): routes, page read models, templates and vendored static assets."""
