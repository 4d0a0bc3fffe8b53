#!/usr/bin/env python3
# notify_server.py: a tiny HTTP server for the notification tests: records every request as one
# JSON line (method, path, Title header, body) in LOG, answers 200, or 500 for a path under
# /broken/. Writes the port it listens on (127.0.0.1, chosen by the kernel) to PORTFILE.
# Usage: notify_server.py LOG PORTFILE   (runs until killed)
import http.server
import json
import sys

log_path, port_path = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def record(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "title": self.headers.get("Title"), "body": body}) + "\n")
        code = 500 if self.path.startswith("/broken/") else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = record
    do_POST = record

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(port_path + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(port_path + ".tmp", port_path)
srv.serve_forever()
