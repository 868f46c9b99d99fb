#!/usr/bin/env bash
# Which ASGI server? The same fixed-body app on uvicorn (uvloop + httptools) and on granian,
# one worker each, wrk with 32 connections over loopback. Prints requests/s and latency.
# Needs: wrk (apt-get install wrk), granian (pip install granian; bench only).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PY:-../.venv/bin/python}
DURATION=${DURATION:-8s}
"$PY" -c "import granian" 2>/dev/null || "$PY" -m pip install -q granian
run() {
  local name=$1 port=$2; shift 2
  "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  wrk -t2 -c32 -d2s -s post.lua "http://127.0.0.1:$port/" >/dev/null   # warm-up
  echo "== $name"
  wrk -t2 -c32 -d"$DURATION" --latency -s post.lua "http://127.0.0.1:$port/" \
    | grep -E "Requests/sec|^ +50%|^ +99%"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run "uvicorn (uvloop, httptools)" 9301 "$PY" -m uvicorn fixed_app:app --port 9301 \
  --no-access-log --log-level warning --loop uvloop --http httptools
run "granian (asgi, uvloop)" 9302 "$PY" -m granian --interface asgi --port 9302 \
  --log-level warning --loop uvloop fixed_app:app
