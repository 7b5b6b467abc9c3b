"""Entry point. ``python server.py`` serves on 127.0.0.1:8000 (KYC_HOST / KYC_PORT to change);
in production run gunicorn with the repo's config: ``gunicorn -c gunicorn.conf.py server:app``.

Works with no AWS credentials: the LLM layer then runs offline and every decision says so.
"""

from __future__ import annotations

import logging
import sys

from kyc_llm.errors import KycError
from kyc_llm.web import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
try:
    app = create_app()
except KycError as exc:  # a bad setting or template: one line that names it, not a traceback
    if __name__ != "__main__":
        raise  # imported (gunicorn): its log shows the error
    sys.exit(f"error: {exc.message}")

if __name__ == "__main__":
    config = app.config["KYC"]
    app.run(host=config.host, port=config.port, threaded=True)
