# SPDX-License-Identifier: GPL-2.0-or-later
"""A small DNS server for tests (Python standard library only): UDP and TCP
on 127.0.0.1, one free port for both, answering MX, A, AAAA and CNAME
questions from a dict the test gives, so nothing asks the machine's
resolver. Point an instance at it with `dns_server = 127.0.0.1:PORT`.

    with DnsStub(records={
            "example.org": {"MX": [(10, "mx1.example.org"), (20, "mx2.example.org")]},
            "mx1.example.org": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
            "nomail.example": {"MX": [(0, ".")]},      # null MX (RFC 7505)
            "www.example.org": {"CNAME": "mx1.example.org"},
            "broken.example": "SERVFAIL",              # every type
            "slow.example": {"MX": "TIMEOUT"},         # no answer, for MX only
        }) as dns:
        conf = dns.config_line()   # dns_server = "127.0.0.1:PORT"

DnsStub(host="::1") listens on IPv6 instead. A name not in `records` is
NXDOMAIN; a known name without the asked type has no records (NOERROR,
NODATA). Instead of a list, a name or a type may
map to "SERVFAIL", "NXDOMAIN", "REFUSED", "TIMEOUT" (never answered) or
"GARBLED" (an answer whose name is a compression loop). With
additional=True an MX answer carries its hosts' A/AAAA records in the
additional section. A UDP answer over 512 octets is sent truncated (TC),
as servers do without EDNS, and the client must ask again over TCP.
`queries` lists every question as (name, type, "udp" or "tcp"); `set()`
changes a name's records while the stub runs."""

import socket
import struct
import threading

TYPES = {"A": 1, "CNAME": 5, "MX": 15, "AAAA": 28}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {"SERVFAIL": 2, "NXDOMAIN": 3, "REFUSED": 5}
FAILURES = set(RCODES) | {"TIMEOUT", "GARBLED"}
UDP_LIMIT = 512  # RFC 1035 §4.2.1, without EDNS


def encode_name(name):
    """Wire form of a dotted name; "." or "" is the root."""
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_question(query):
    """(id, flags, name, qtype, question section) of a query; ValueError if
    it is not one."""
    if len(query) < 12:
        raise ValueError("short")
    qid, flags, qdcount = struct.unpack(">HHH", query[:6])
    if qdcount != 1 or flags & 0x8000:
        raise ValueError("not a single question")
    labels, pos = [], 12
    while True:
        n = query[pos]
        if n == 0 or n & 0xC0:
            break
        labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    qtype, _qclass = struct.unpack(">HH", query[pos + 1:pos + 5])
    return qid, flags, ".".join(labels), qtype, query[12:pos + 5]


class DnsStub:
    def __init__(self, records=None, additional=False, host="127.0.0.1"):
        self.records = {k.lower().rstrip("."): v for k, v in (records or {}).items()}
        self.additional = additional
        self.host = host
        self.queries = []
        self._lock = threading.Lock()
        self._threads = []
        self._stopping = threading.Event()
        self.udp = self.tcp = None
        self.port = None

    @property
    def address(self):
        """The value for dns_server: "127.0.0.1:PORT" or "[::1]:PORT"."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def config_line(self):
        return f'dns_server = "{self.address}"\n'

    def names_asked(self, qtype=None):
        """The names asked about, in order (of one type if given)."""
        with self._lock:
            return [n for n, t, _ in self.queries if qtype is None or t == qtype]

    # --- the records ---

    def set(self, name, value):
        with self._lock:
            self.records[name.lower().rstrip(".")] = value

    def _lookup(self, name, qtype, depth=0):
        """("ok", [records]) or (failure, None); records are (owner, type, rdata)."""
        if depth > 8:  # a CNAME loop in the test's records
            return "ok", []
        with self._lock:
            entry = self.records.get(name.lower())
        if entry is None:
            return "NXDOMAIN", None
        if isinstance(entry, str):
            return entry, None
        wanted = TYPE_NAMES.get(qtype)
        value = entry.get(wanted) if wanted else None
        if isinstance(value, str) and value in FAILURES:
            return value, None
        if value is None and "CNAME" in entry and wanted != "CNAME":
            target = entry["CNAME"]
            status, rest = self._lookup(target, qtype, depth + 1)
            if status != "ok":
                return status, rest
            return "ok", [(name, 5, encode_name(target))] + rest
        return "ok", [(name, qtype, self._rdata(qtype, v)) for v in self._as_list(value)]

    @staticmethod
    def _as_list(value):
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    @staticmethod
    def _rdata(qtype, value):
        if qtype == 1:
            return socket.inet_pton(socket.AF_INET, value)
        if qtype == 28:
            return socket.inet_pton(socket.AF_INET6, value)
        if qtype == 15:
            preference, exchange = value
            return struct.pack(">H", preference) + encode_name(exchange)
        if qtype == 5:
            return encode_name(value)
        raise ValueError(f"no rdata for type {qtype}")

    def _additional_for(self, answers):
        extra = []
        for _owner, rtype, rdata in answers:
            if rtype != 15:
                continue
            host = self._decode_plain_name(rdata[2:])
            for t in (1, 28):
                status, records = self._lookup(host, t)
                if status == "ok":
                    extra += [r for r in records if r[1] == t]
        return extra

    @staticmethod
    def _decode_plain_name(raw):
        labels, pos = [], 0
        while raw[pos]:
            labels.append(raw[pos + 1:pos + 1 + raw[pos]].decode())
            pos += 1 + raw[pos]
        return ".".join(labels)

    # --- the answers ---

    def answer(self, query, transport):
        """The response to `query` (bytes), or None for no answer at all."""
        try:
            qid, flags, name, qtype, question = parse_question(query)
        except (ValueError, IndexError, struct.error):
            return None
        with self._lock:
            self.queries.append((name, TYPE_NAMES.get(qtype, str(qtype)), transport))
        status, answers = self._lookup(name, qtype)
        if status == "TIMEOUT":
            return None
        head_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080  # QR AA RD RA
        if status == "GARBLED":
            loop = struct.pack(">H", 0xC000 | (12 + len(question)))  # points at itself
            record = loop + struct.pack(">HHIH", qtype, 1, 60, 0)
            return struct.pack(">HHHHHH", qid, head_flags, 1, 1, 0, 0) + question + record
        if status != "ok":
            return struct.pack(">HHHHHH", qid, head_flags | RCODES[status], 1, 0, 0, 0) + question
        extra = self._additional_for(answers) if self.additional and qtype == 15 else []
        body = b""
        for owner, rtype, rdata in answers + extra:
            # Owners equal to the question are compressed to it, as servers do.
            owner_bytes = b"\xc0\x0c" if owner.lower() == name.lower() else encode_name(owner)
            body += owner_bytes + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata
        message = struct.pack(">HHHHHH", qid, head_flags, 1, len(answers), 0, len(extra)) + question + body
        if transport == "udp" and len(message) > UDP_LIMIT:
            message = struct.pack(">HHHHHH", qid, head_flags | 0x0200, 1, 0, 0, 0) + question
        return message

    # --- the sockets ---

    def start(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _attempt in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            self.udp, self.tcp, self.port = udp, tcp, port
            break
        else:
            raise OSError("no port free for both UDP and TCP")
        self.udp.settimeout(0.1)
        self.tcp.settimeout(0.1)
        for target in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        for t in self._threads:
            t.join(5)
        for s in (self.udp, self.tcp):
            if s is not None:
                s.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve_udp(self):
        while not self._stopping.is_set():
            try:
                query, peer = self.udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(query, "udp")
            if reply is not None:
                try:
                    self.udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self):
        while not self._stopping.is_set():
            try:
                conn, _peer = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn):
        with conn:
            conn.settimeout(5)
            try:
                while not self._stopping.is_set():
                    head = self._read_exactly(conn, 2)
                    if head is None:
                        return
                    query = self._read_exactly(conn, struct.unpack(">H", head)[0])
                    if query is None:
                        return
                    reply = self.answer(query, "tcp")
                    if reply is None:
                        return  # "TIMEOUT" over TCP: hang up without an answer
                    conn.sendall(struct.pack(">H", len(reply)) + reply)
            except OSError:
                return

    @staticmethod
    def _read_exactly(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data
