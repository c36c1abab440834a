"""The portal as the ingest benchmark serves it: the real app plus one bare endpoint for the baseline.

`POST /bench/bare` goes through the same app, hooks and gunicorn workers as `/webhooks/waha`, reads the body and
answers 200, so the difference between the two is what the receiver itself costs.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import jsonify, request

from bench._events_setup import environ
from portal import create_app
from portal.extensions import csrf

app = create_app(environ(WAHA_BASE_URL=os.environ.get("BENCH_WAHA_URL", "http://127.0.0.1:9")))


@app.post("/bench/bare")
@csrf.exempt
def bare():
    request.get_data()
    return jsonify(received=1)
