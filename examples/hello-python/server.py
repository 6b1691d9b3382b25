"""A tiny web app for Hangar's examples: Python's standard library only."""
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from greeting import GREETING

PORT = int(os.environ.get("PORT", "8080"))
VERSION = os.environ.get("APP_VERSION", "dev")


class Handler(BaseHTTPRequestHandler):
    server_version = "hello-python/1"

    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, "ok\n", "text/plain")
        if self.path == "/env":
            info = {k: v for k, v in os.environ.items() if k.startswith(("FLY_", "PORT", "APP_"))}
            return self.reply(200, json.dumps(info, sort_keys=True) + "\n", "application/json")
        machine = os.environ.get("FLY_MACHINE_ID", "local")
        self.reply(200, f"{GREETING} (machine {machine}, user {os.getuid()})\n", "text/plain")

    def reply(self, status, body, ctype):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", ctype + "; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main():
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    # Hangar (like Fly) stops machines with SIGINT by default; SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on :{PORT} as uid {os.getuid()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    print("bye", flush=True)


if __name__ == "__main__":
    main()
