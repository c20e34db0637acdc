#!/usr/bin/env python3
"""registry_server.py - a tiny schema registry for the unit tests: serves
the <id>.avsc files beside it under Confluent's API (GET /schemas/ids/{id})
and Apicurio's native one (GET /apis/registry/v2/ids/globalIds/{id}), 404
for any other id.  Listens on 127.0.0.1 on a free port, writes the port to
PORT_FILE once it listens, and appends one line per request ("<path>
<Authorization header or ->") to LOG_FILE.  PORT: listen there instead
(a registry that comes back after an outage).

    registry_server.py PORT_FILE LOG_FILE [PORT]"""
import http.server
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(self.server.log_file, "a") as f:
            f.write("%s %s\n" % (self.path, self.headers.get("Authorization", "-")))
        m = re.fullmatch(r"/schemas/ids/(\d+)|/apis/registry/v2/ids/globalIds/(\d+)", self.path)
        path = m and os.path.join(HERE, "%s.avsc" % (m.group(1) or m.group(2)))
        if not path or not os.path.exists(path):
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error_code":40403,"message":"Schema not found"}')
            return
        text = open(path).read()
        body = text.encode() if m.group(2) else json.dumps({"schema": text}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[3]) if len(sys.argv) > 3 else 0), Handler)
    srv.log_file = sys.argv[2]
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
