"""URL canonical form for joining URL lists: a page cited as `http://www.Example.org/a/#top` and crawled
as `https://example.org/a` is the same page. Only what never changes the page is folded (scheme, case of
the host, a `www.` prefix, the default port, a fragment, a trailing slash); the path and query keep their
case and order, since servers may tell them apart."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """The join key of a URL: host (lower case, no `www.`, no default port) + path (no trailing slash)
    + query; the scheme and fragment are left out. A string that is not a URL is returned stripped."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return text
    if not parts.netloc:
        return text
    host = (parts.hostname or "").removeprefix("www.")
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    return f"{host}{path}?{parts.query}" if parts.query else f"{host}{path}"
