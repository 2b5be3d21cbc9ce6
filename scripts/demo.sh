#!/usr/bin/env bash
# Ingest the Python 3.11 docs from a loopback mirror (citations link to docs.python.org/3.11),
# then serve the API on 127.0.0.1:8000. Usage: scripts/demo.sh HTML_DIR [--no-serve]
# Re-running it is cheap: pages the index already holds answer the conditional GET with 304.
set -euo pipefail
html_dir="$1"
serve="${2:-}"
bin="$(dirname "$0")/../.venv/bin"
mirror_port="${CITELINE_DEMO_MIRROR_PORT:-8765}"
export CITELINE_INDEX="${CITELINE_INDEX:-python-docs}"
export HF_HUB_OFFLINE=1

"$bin/python" -m http.server "$mirror_port" --bind 127.0.0.1 -d "$html_dir" >/dev/null 2>&1 &
mirror=$!
trap 'kill $mirror 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -fsS -o /dev/null "http://127.0.0.1:$mirror_port/index.html" && break
  sleep 0.2
done

# The mirror is our own loopback server: open the SSRF guard for exactly it, and owe it no
# politeness delay (robots.txt is still asked for; http.server answers 404, which allows all).
CITELINE_PER_HOST_DELAY=0 "$bin/citeline" ingest "http://127.0.0.1:$mirror_port/index.html" \
  --index "$CITELINE_INDEX" --max-pages 600 --allow-host "127.0.0.1:$mirror_port" \
  --map-url "http://127.0.0.1:$mirror_port/=https://docs.python.org/3.11/" \
  --summary-json "${TMPDIR:-/tmp}/citeline-demo-ingest.json"
kill $mirror 2>/dev/null || true
trap - EXIT
[ "$serve" = "--no-serve" ] && exit 0

cat <<MSG

citeline is starting on http://127.0.0.1:8000 (OpenAPI: http://127.0.0.1:8000/schema).
Once http://127.0.0.1:8000/readyz says "ready", try:

  curl -s http://127.0.0.1:8000/v1/ask -H 'content-type: application/json' \\
       -d '{"question": "How do I read a JSON file in Python?"}' | python3 -m json.tool

MSG
exec "$bin/citeline" serve --host 127.0.0.1 --port 8000
