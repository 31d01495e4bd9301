#!/usr/bin/env python3
"""An OTLP/HTTP collector that keeps nothing, for measuring what exporting traces costs
Herald: it answers every export with an empty ExportTraceServiceResponse and counts the
bytes and requests it was sent (printed at exit).

    bench/otlp-sink.py 4318 &
    HERALD__TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:4318 HERALD__TELEMETRY__SAMPLE_RATIO=0.01 \\
      SCENARIOS="single steady" TARGETS=herald bench/run.sh 2000 3
"""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        received["requests"] += 1
        received["bytes"] += length
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    server = ThreadingHTTPServer(("127.0.0.1", port), Sink)

    def stop(*_):
        print(f"otlp-sink: {received['requests']} exports, {received['bytes']} bytes", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
