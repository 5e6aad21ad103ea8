"""Serve recorded Docker Engine API answers on a unix socket.

For engine versions this machine does not run (23 to 29): the module talks to this server
exactly as it talks to dockerd, and the answers are what those engines returned.
"""

import contextlib
import http.server
import json
import os
import socketserver
import threading

ENGINE_FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit", "fixtures", "engine"
)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def recorded_answers(engine):
    """``{"/version": (200, text), "/info": (200, text)}`` from fixtures/engine/<engine>/."""
    directory = os.path.join(ENGINE_FIXTURES, engine)
    answers = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as handle:
            answers["/" + os.path.splitext(name)[0]] = (200, handle.read())
    return answers


def _handler_for(answers):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            # Clients may prefix a version (/v1.41/info); recorded answers are unversioned.
            path = self.path.split("?", 1)[0]
            if path.startswith("/v1."):
                path = "/" + path.split("/", 2)[2]
            status, body = answers.get(path, (404, json.dumps({"message": "page not found"})))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def address_string(self):
            return "unix"

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def serve_engine(socket_path, answers):
    """Serve ``answers`` (path -> (status, body)) on ``socket_path`` until the block ends."""
    server = _UnixHTTPServer(socket_path, _handler_for(answers))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "unix://" + socket_path
    finally:
        server.shutdown()
        server.server_close()
        if os.path.exists(socket_path):
            os.unlink(socket_path)
