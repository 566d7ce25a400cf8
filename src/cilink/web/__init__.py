"""The review workbench as a local web app (`cilink review serve`): Starlette + Jinja2 served by uvicorn.

Only the presentation lives here; what is shown and recorded comes from ``cilink.link.workbench``.
"""
