"""Start the briefqa chat in a browser: `python app.py` (settings from QA_* variables)."""

from qa.chat import serve

if __name__ == "__main__":
    serve()
