#!/usr/bin/env python3
"""Runs a command with a fresh pseudo-terminal as its controlling terminal and answers its prompts.

The shared pty helper of the tests (TypeScript and Python): Piper Link reads PINs and passphrases
only from the controlling terminal (/dev/tty), so tests type them at the real prompt, as a person
would, instead of using any bypass.

usage: pty_run.py SPEC -- COMMAND [ARG...]

SPEC is JSON: {"answers": [[REGEX, TEXT], ...], "timeout": SECONDS, "transcript": PATH?}
Each time the terminal shows text matching REGEX (searched in what appeared since the last answer,
rules tried in order), TEXT and Enter are typed. The command's stdin, stdout and stderr are this
script's own (so pipes and --json output work as usual); only the terminal is the pty. The exit code
is the command's (124 on timeout). With "transcript", what the terminal showed is written there.
"""
import fcntl
import json
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(sys.argv[1])
    answers = [(re.compile(rx.encode()), text.encode()) for rx, text in spec.get("answers", [])]
    deadline = time.time() + float(spec.get("timeout", 60))
    master, slave = pty.openpty()

    def become_session_leader() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(sys.argv[3:], preexec_fn=become_session_leader, pass_fds=(slave,))
    os.close(slave)
    transcript = b""
    pending = b""
    code = None
    while True:
        if time.time() > deadline:
            child.kill()
            child.wait()
            code = 124
            break
        ready, _, _ = select.select([master], [], [], 0.05)
        if master in ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                data = b""
            if not data:
                # EIO: no process holds the terminal any more.
                if child.poll() is not None:
                    code = child.wait()
                    break
                time.sleep(0.05)
                continue
            transcript += data
            pending += data
            for rx, text in answers:
                if rx.search(pending):
                    os.write(master, text + b"\r")
                    pending = b""
                    break
        if child.poll() is not None and master not in ready:
            code = child.returncode
            break
    os.close(master)
    if spec.get("transcript"):
        with open(spec["transcript"], "wb") as f:
            f.write(transcript)
    return code if code is not None else 1


if __name__ == "__main__":
    sys.exit(main())
