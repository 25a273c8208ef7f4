#!/usr/bin/env python3
# fake_redis.py - a small RESP server on 127.0.0.1 for test_store_hostile.sh (python3 stdlib
# only): enough of Redis for referee's store (SCRIPT LOAD, SELECT, SUBSCRIBE, EVALSHA, SET NX
# of a first nonce count, PING, HGETALL) that answers normally for good users and with hostile replies for the HGETALL of
# some users, as a broken or hostile Redis could:
#   referee:user:h100m@...    *100000000 (an aggregate header, then nothing)
#   referee:user:h2g@...      *2000000000
#   referee:user:hbulk@...    $1000000000 then its bytes in 64 KiB chunks, at most 64 MiB sent
#   referee:user:htree@...    *4 of *100000 integers (400 000 integers)
#   referee:user:hstrings@... *2000 strings of 5000 bytes
#   referee:user:<digits>@D   a valid user: ha1_md5 = MD5(<digits>:D:<password>), LocalDialing
#   anything else             *0 (unknown user)
# Usage: fake_redis.py PORT PASSWORD. One line per connection and per hostile reply on stdout
# ("conn N", "hostile NAME sent=BYTES peer_closed=0|1"). Each connection has its own thread.
import hashlib
import re
import socket
import socketserver
import sys
import threading

PORT = int(sys.argv[1])
PASSWORD = sys.argv[2]
BULK_CAP = 64 << 20  # the 1 GB string is never sent whole: the test stays bounded
lock = threading.Lock()
conns = 0


def say(line):
    with lock:
        print(line, flush=True)


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def array(items):
    return b"*%d\r\n" % len(items) + b"".join(items)


def hostile_parts(name):
    """The hostile reply of NAME, as a generator of byte chunks (bounded)."""
    if name == "h100m":
        yield b"*100000000\r\n"
    elif name == "h2g":
        yield b"*2000000000\r\n"
    elif name == "hbulk":
        yield b"$1000000000\r\n"
        chunk = b"x" * 65536
        for _ in range(BULK_CAP // len(chunk)):
            yield chunk
    elif name == "htree":
        yield b"*4\r\n"
        for _ in range(4):
            yield b"*100000\r\n" + b":7\r\n" * 100000
    elif name == "hstrings":
        yield b"*2000\r\n"
        s = bulk(b"y" * 5000)
        for _ in range(20):
            yield s * 100


class Conn(socketserver.BaseRequestHandler):
    def handle(self):
        global conns
        with lock:
            conns += 1
            n = conns
        say("conn %d" % n)
        self.buf = b""
        sock = self.request
        while True:
            cmd = self.read_command()
            if cmd is None:
                return
            if not self.answer(sock, cmd):
                return

    def read_command(self):
        """One command (an array of bulk strings, as hiredis sends them), or None at EOF."""
        while True:
            m = re.match(rb"\*(\d+)\r\n", self.buf)
            if m:
                pos, args, ok = m.end(), [], True
                for _ in range(int(m.group(1))):
                    h = re.match(rb"\$(\d+)\r\n", self.buf[pos:])
                    if not h or len(self.buf) < pos + h.end() + int(h.group(1)) + 2:
                        ok = False
                        break
                    start = pos + h.end()
                    args.append(self.buf[start:start + int(h.group(1))])
                    pos = start + int(h.group(1)) + 2
                if ok:
                    self.buf = self.buf[pos:]
                    return args
            try:
                data = self.request.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data

    def answer(self, sock, cmd):
        name = cmd[0].upper()
        try:
            if name == b"SCRIPT":
                sock.sendall(bulk(hashlib.sha1(cmd[2]).hexdigest().encode()))
            elif name == b"SUBSCRIBE":
                for i, ch in enumerate(cmd[1:]):
                    sock.sendall(array([bulk(b"subscribe"), bulk(ch), b":%d\r\n" % (i + 1)]))
            elif name == b"EVALSHA":
                sock.sendall(b":1\r\n")
            elif name == b"SET":  # SET referee:nc:<nonce> 1 NX EX ttl: stored (nonces are never reused here)
                sock.sendall(b"+OK\r\n")
            elif name in (b"SELECT", b"PING"):
                sock.sendall(b"+OK\r\n" if name == b"SELECT" else b"+PONG\r\n")
            elif name == b"HGETALL":
                return self.hgetall(sock, cmd[1].decode("latin-1"))
            else:
                sock.sendall(b"-ERR unknown command\r\n")
        except OSError:
            return False
        return True

    def hgetall(self, sock, key):
        m = re.match(r"referee:user:([^@]+)@(.+)$", key)
        user, domain = (m.group(1), m.group(2)) if m else ("", "")
        if user.startswith("h"):
            sent, closed = 0, 0
            try:
                for part in hostile_parts(user):
                    sock.sendall(part)
                    sent += len(part)
            except OSError:
                closed = 1
            if not closed:  # the reply is out: does referee hang up on it?
                sock.settimeout(10)
                try:
                    closed = 1 if not sock.recv(65536) else 0
                except OSError:
                    closed = 1
            say("hostile %s sent=%d peer_closed=%d" % (user, sent, closed))
            return False
        if user.isdigit():
            ha1 = hashlib.md5(("%s:%s:%s" % (user, domain, PASSWORD)).encode()).hexdigest()
            sock.sendall(array([bulk(b"ha1_md5"), bulk(ha1.encode()), bulk(b"permissions"), bulk(b"LocalDialing")]))
        else:
            sock.sendall(b"*0\r\n")
        return True


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with Server(("127.0.0.1", PORT), Conn) as srv:
    say("listening %d" % PORT)
    srv.serve_forever()
