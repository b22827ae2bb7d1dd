"""Serving safely: who may bind where (loopback, or login required), the credentials, and the
server's limits and look."""

from __future__ import annotations

import hmac
import ipaddress
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from qa.chat.assets import CSS
from qa.chat.layout import build_app
from qa.config import Config


class ServeRefused(Exception):
    """`qa serve` will not start as asked (exposed without authentication, bad credentials file)."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _credential(line: str, where: str) -> tuple[str, str]:
    user, sep, password = line.partition(":")
    if not sep or not user.strip() or not password:
        raise ServeRefused(f"{where}: expected user:password")
    return user.strip(), password


def load_credentials(config: Config) -> list[tuple[str, str]]:
    """The user:password pairs from QA_AUTH and the QA_AUTH_FILE file (one per line, # comments)."""
    pairs = [_credential(config.auth, "QA_AUTH")] if config.auth else []
    if config.auth_file:
        path = Path(config.auth_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServeRefused(f"cannot read QA_AUTH_FILE {path}: {getattr(exc, 'strerror', None) or exc}") from None
        found = [
            _credential(line.strip(), f"{path} line {n}")
            for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not found:
            raise ServeRefused(f"QA_AUTH_FILE {path} holds no user:password lines")
        pairs += found
    return pairs


def password_check(pairs: Sequence[tuple[str, str]]) -> Callable[[str, str], bool]:
    """Gradio's auth callback: constant-time comparison against every known pair."""
    known = [(u.encode(), p.encode()) for u, p in pairs]

    def check(username: str, password: str) -> bool:
        given_user, given_password = (username or "").encode(), (password or "").encode()
        ok = False
        for user, pw in known:
            ok |= hmac.compare_digest(given_user, user) & hmac.compare_digest(given_password, pw)
        return ok

    return check


def exposure_auth(host: str, config: Config, insecure: bool = False) -> Callable[[str, str], bool] | None:
    """The auth callback for this bind address, or None for none; refuses an exposed, open server.

    Loopback needs nothing (credentials are still used if given). Any other address needs
    QA_AUTH / QA_AUTH_FILE, or `insecure=True`, which prints a warning.
    """
    pairs = load_credentials(config)
    if pairs:
        return password_check(pairs)
    if not is_loopback(host):
        if not insecure:
            raise ServeRefused(
                f"refusing to serve on {host} without authentication: anyone who can reach it could read and "
                "change the documents. Set QA_AUTH=user:password (or QA_AUTH_FILE=a file of user:password "
                "lines), bind 127.0.0.1, or pass --insecure to serve it open anyway."
            )
        print(
            f"qa serve: WARNING: serving on {host} WITHOUT authentication (--insecure): anyone who can reach "
            "this port can read the documents, ask questions and add or remove documents.",
            file=sys.stderr,
        )
    return None


def launch(demo: gr.Blocks, config: Config, *, host: str | None = None, port: int | None = None, **extra: Any) -> None:
    """Start the server with the app's limits and look; tests pass prevent_thread_lock/quiet/auth here.

    Serves no files from disk beyond Gradio's own assets and upload cache: no allowed_paths, and the
    index folder is blocked outright.
    """
    demo.launch(
        server_name=host or config.host,
        server_port=port or config.port,
        max_file_size=config.max_file_bytes,
        allowed_paths=[],
        blocked_paths=[str(Path(config.index_dir).resolve())],
        footer_links=["api"],
        ssr_mode=False,
        enable_monitoring=False,
        mcp_server=False,
        theme=gr.themes.Soft(),
        css=CSS,
        **extra,
    )


def serve(
    config: Config | None = None, *, host: str | None = None, port: int | None = None, insecure: bool = False
) -> None:
    """Build the index from the seeds if it is empty, then serve the chat (127.0.0.1 by default).

    Raises ServeRefused, before loading anything, for a non-loopback address without authentication.
    """
    config = config or Config.load()
    host = host or config.host
    auth = exposure_auth(host, config, insecure)
    from qa.pipeline import Pipeline  # here, so the rendering tests need not import the ML stack

    pipeline = Pipeline(config)
    pipeline.ensure_seeded()
    # The models load while Gradio builds and binds: the first question does not pay for them.
    threading.Thread(target=pipeline.warm_up, name="warm-up", daemon=True).start()
    launch(build_app(pipeline), config, host=host, port=port, auth=auth)
