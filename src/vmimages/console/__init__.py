"""The web console (GET /console): static files shipped in the package, served with strict
security headers. The page is a client of the public API itself (console.js); the server adds
nothing for it beyond these files (docs/console.md)."""

from __future__ import annotations

from importlib import resources

PATH = "/console"

FILES = {
    "/console": ("index.html", b"text/html; charset=utf-8"),
    "/console/": ("index.html", b"text/html; charset=utf-8"),
    "/console/console.js": ("console.js", b"text/javascript; charset=utf-8"),
    "/console/console.css": ("console.css", b"text/css; charset=utf-8"),
    "/console/icon.svg": ("icon.svg", b"image/svg+xml"),
}

# No inline script or style, nothing from elsewhere, no framing, no referrer.
SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        b" img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-cache"),
)


class Console:
    """The console's files, read once."""

    def __init__(self) -> None:
        folder = resources.files(__name__)
        self.files = {
            path: (folder.joinpath(name).read_bytes(), content_type)
            for path, (name, content_type) in FILES.items()
        }

    def find(self, path: str) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
        """The body and headers of a console file, or None if there is no such file."""
        found = self.files.get(path)
        if found is None:
            return None
        body, content_type = found
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            *SECURITY_HEADERS,
        ]
        return body, headers
