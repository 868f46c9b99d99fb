"""The ceiling's fixed app (fixed_app.py, its body the size of a q20 answer) served through
vmimages' own HTTP protocol (transport.BoundedHttpToolsProtocol, with the request path's
options `serve` gives uvicorn: uvloop, no access log, no server or date header, no proxy
headers) instead of uvicorn's: the transport alone, without the app, for
`versus.py --traffic transport`. Run from bench/, in the Python of the checkout measured.

    CEILING_IMAGES=20 python bench/transport_app.py PORT
"""

from __future__ import annotations

import sys

import uvicorn

from vmimages.transport import BoundedHttpToolsProtocol

if __name__ == "__main__":
    uvicorn.run(
        "fixed_app:app", port=int(sys.argv[1]), loop="uvloop", http=BoundedHttpToolsProtocol,
        access_log=False, log_level="warning", server_header=False, date_header=False,
        proxy_headers=False,
    )  # fmt: skip
