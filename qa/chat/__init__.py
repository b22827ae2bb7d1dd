"""The browser chat: a Gradio 6 app over a `Pipeline` (`qa serve`, app.py).

Modules by job: `render` (escaping, and all the HTML and Markdown the chat shows), `handlers` (the
UI's event handlers), `layout` (the page and its event wiring: `build_app`), `api` (the endpoints for
scripts), `uploads` (uploaded files in and out of the index), `examples` (example questions from the
documents), `server` (bind and login rules, launching: `serve`), `backend` (what the chat needs from the
pipeline), `assets` (the CSS and scripts in static/).
"""

from qa.chat.layout import build_app
from qa.chat.server import ServeRefused, serve

__all__ = ["ServeRefused", "build_app", "serve"]
