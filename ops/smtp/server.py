"""A test SMTP server for Emporium (aiosmtpd): accepts every message and writes it to a directory.

Each accepted message becomes one JSON file in --maildir, written atomically (a temporary file
renamed into place), named msg-<sequence>.json:

    {"sequence": 1, "peer": "127.0.0.1", "mailFrom": "...", "rcptTos": ["..."], "data": "<the raw message>"}

On start it prints one line on stdout once it accepts connections (and writes the port to
--port-file when given):

    smtp server listening on 127.0.0.1:PORT

Options:
    --host HOST             address to listen on (default 127.0.0.1)
    --port PORT             port (default 0: a free one)
    --port-file PATH        write the bound port there
    --maildir DIR           where messages go (created when missing; required)
    --temp-fail N           answer the first N messages with 451 (a temporary failure), then accept
    --watch-pid PID         exit once PID is gone
    --exit-on-stdin-eof     exit when standard input closes (the parent that holds the pipe died)

SIGTERM and SIGINT close the listener and exit 0. Loopback only by default; it relays nothing.
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys

from aiosmtpd.smtp import SMTP


class MaildirHandler:
    def __init__(self, maildir, temp_fail):
        self.maildir = maildir
        self.temp_fail = temp_fail
        self.sequence = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        if self.temp_fail > 0:
            self.temp_fail -= 1
            log(f"answered 451 to a message for {envelope.rcpt_tos} ({self.temp_fail} more to refuse)")
            return "451 4.3.0 temporary failure (test server told to refuse)"
        sequence = next(self.sequence)
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, bytes):
            content = content.decode("utf-8", errors="replace")
        record = {
            "sequence": sequence,
            "peer": str(session.peer[0]) if session.peer else None,
            "mailFrom": envelope.mail_from,
            "rcptTos": list(envelope.rcpt_tos),
            "data": content,
        }
        final = os.path.join(self.maildir, f"msg-{sequence:06d}.json")
        temporary = final + ".tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.replace(temporary, final)
        log(f"accepted message {sequence} from {envelope.mail_from} for {envelope.rcpt_tos}")
        return "250 2.0.0 message accepted"


def log(text):
    print(f"smtp server: {text}", file=sys.stderr, flush=True)


async def watch_pid(pid, stop):
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log(f"process {pid} is gone; exiting")
            stop.set()
            return
        except PermissionError:
            pass
        await asyncio.sleep(0.5)


async def watch_stdin(stop):
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    log("standard input closed; exiting")
    stop.set()


async def main():
    parser = argparse.ArgumentParser(description="Emporium's test SMTP server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--temp-fail", type=int, default=0)
    parser.add_argument("--watch-pid", type=int)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()

    os.makedirs(args.maildir, exist_ok=True)
    handler = MaildirHandler(args.maildir, args.temp_fail)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="emporium-test-smtp", enable_SMTPUTF8=True, data_size_limit=10 * 1024 * 1024),
        host=args.host,
        port=args.port,
    )
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        temporary = args.port_file + ".tmp"
        with open(temporary, "w") as file:
            file.write(f"{port}\n")
        os.replace(temporary, args.port_file)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watchers = []
    if args.watch_pid:
        watchers.append(asyncio.ensure_future(watch_pid(args.watch_pid, stop)))
    if args.exit_on_stdin_eof:
        watchers.append(asyncio.ensure_future(watch_stdin(stop)))

    print(f"smtp server listening on {args.host}:{port}", flush=True)
    log(f"listening on {args.host}:{port}, writing messages to {args.maildir}")
    await stop.wait()
    server.close()
    await server.wait_closed()
    for watcher in watchers:
        watcher.cancel()


if __name__ == "__main__":
    asyncio.run(main())
    # The stdin reader thread may still block on read(): leave without waiting for it.
    os._exit(0)
