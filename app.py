"""Start the briefqa chat in a browser: `python app.py [--host H] [--port P] [--insecure]`.

The same as `qa serve`: settings from QA_* variables; a non-loopback host needs QA_AUTH / QA_AUTH_FILE.
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
