"""A loopback SMTP server for cronq's email tests, on aiosmtpd.

Binds 127.0.0.1 on a free port and prints "READY <port>" on stdout. Each
accepted message is written to DIR/msg-<n>.json with its envelope, headers
and decoded body parts; each connection appends a line to DIR/connections.
It exits when its stdin closes, so it cannot outlive the test that started it.

Options:
  --dir DIR               where messages and the connection log go (required)
  --rcpt-reply "550 ..."  answer every RCPT TO with this reply
  --data-reply "451 ..."  answer every DATA with this reply
  --auth USER:PASSWORD    offer AUTH (PLAIN, LOGIN) on the plain connection
                          and require it before MAIL
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, directory, rcpt_reply, data_reply):
        self.directory = directory
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.numbers = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = [
            {"content_type": part.get_content_type(), "body": part.get_content()}
            for part in message.walk()
            if not part.is_multipart()
        ]
        login = getattr(session, "login_data", None)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": [[name, str(value)] for name, value in message.items()],
            "content_type": message.get_content_type(),
            "parts": parts,
            "auth_login": login.decode() if login else None,
            "raw": raw.decode("utf-8", "replace"),
        }
        n = next(self.numbers)
        path = os.path.join(self.directory, f"msg-{n:04}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


class CountingSMTP(SMTP):
    """Logs each new connection, so tests can see the client's pool at work."""

    def __init__(self, *args, connections_log, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections_log = connections_log

    def connection_made(self, transport):
        with open(self.connections_log, "a") as f:
            f.write("connection\n")
        super().connection_made(transport)


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, auth_data=auth_data if ok else None, handled=False)

    return authenticate


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--rcpt-reply")
    parser.add_argument("--data-reply")
    parser.add_argument("--auth")
    args = parser.parse_args()

    recorder = Recorder(args.dir, args.rcpt_reply, args.data_reply)
    kwargs = {
        "hostname": "localhost",  # the default looks up the FQDN: slow offline
        "connections_log": os.path.join(args.dir, "connections"),
    }
    if args.auth:
        user, password = args.auth.split(":", 1)
        kwargs.update(
            authenticator=authenticator_for(user, password),
            auth_required=True,
            auth_require_tls=False,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: CountingSMTP(recorder, **kwargs), host="127.0.0.1", port=0
        )
    )
    port = server.sockets[0].getsockname()[1]
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    print(f"READY {port}", flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
