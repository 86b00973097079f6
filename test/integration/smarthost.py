# SPDX-License-Identifier: GPL-2.0-or-later
"""A smarthost for the tests of masqmail's SMTP client (remote-deliver): a
real SMTP server we did not write (aiosmtpd) on 127.0.0.1, run by an asyncio
loop in a background thread. It offers STARTTLS or TLS from the first byte,
AUTH PLAIN, LOGIN, CRAM-MD5, XOAUTH2 and OAUTHBEARER, an EHLO reply the test
can edit, and scripted replies. It trusts nothing the client sends and only
records it: each transaction that reached the end of DATA (.messages) and
each line sent outside DATA (.log). Certificates for it (self-signed,
CA-signed, wrong name) come from the openssl command line tool; no DNS.
Checked by smarthost_selftest.py."""

import asyncio
import atexit
import base64
import binascii
import collections
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from typing import List, Optional

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, TLSSetupException

OPENSSL = "/usr/bin/openssl"

# Every mechanism the smarthost knows, in the order it offers them.
PASSWORD_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")
TOKEN_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
ALL_MECHANISMS = PASSWORD_MECHANISMS + TOKEN_MECHANISMS

# aiosmtpd logs each session (and a deprecation warning per AUTH) to
# "mail.log"; without a handler Python prints its warnings on stderr. The
# transcript (Smarthost.transcript_text()) is what a failing test shows.
logging.getLogger("mail.log").addHandler(logging.NullHandler())


# --- certificates ---------------------------------------------------------

CertFiles = collections.namedtuple("CertFiles", "cert key ca")
CertFiles.__doc__ = """Paths of a PEM certificate, its key, and the file a
verifying client trusts: the CA's certificate, or the certificate itself
when it is self-signed."""

LOCALHOST_SAN = ("DNS:localhost", "IP:127.0.0.1")


def _openssl(*args):
    subprocess.run([OPENSSL, *args], check=True, capture_output=True, timeout=60)


def _new_key(key_type):
    """openssl req options for a new key: EC P-256 (fast to make) or RSA 2048."""
    if key_type == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    if key_type == "rsa":
        return ["-newkey", "rsa:2048", "-nodes"]
    raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def make_test_certificate(directory, cn="localhost", san=LOCALHOST_SAN, name="selfsigned", key_type="ec"):
    """A self-signed certificate (no CA) for cn and the subjectAltName
    entries san ("DNS:name", "IP:address"), valid for 30 days, written to
    DIRECTORY/NAME.crt and NAME.key. Returns CertFiles (ca is the cert)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    args = ["req", "-x509", *_new_key(key_type), "-subj", "/CN=" + cn, "-days", "30",
            "-keyout", key, "-out", cert]
    if san:
        args += ["-addext", "subjectAltName=" + ",".join(san)]
    _openssl(*args)
    return CertFiles(cert, key, cert)


def make_ca(directory, name="ca", key_type="ec"):
    """A certificate authority: DIRECTORY/NAME.crt and NAME.key. Returns
    CertFiles (ca is the CA's own certificate)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    _openssl("req", "-x509", *_new_key(key_type), "-subj", "/CN=masqmail test CA " + name, "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", key, "-out", cert)
    return CertFiles(cert, key, cert)


def make_ca_signed_certificate(directory, cn="localhost", san=LOCALHOST_SAN, ca=None, name="server", key_type="ec"):
    """A server certificate for cn and san signed by ca (CertFiles of
    make_ca(); a new CA DIRECTORY/NAME-ca.* when None). Returns CertFiles
    whose ca is the CA's certificate: what a client names as tls_ca_file."""
    if ca is None:
        ca = make_ca(directory, name + "-ca", key_type)
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    csr = os.path.join(directory, name + ".csr")
    extensions = os.path.join(directory, name + ".ext")
    _openssl("req", "-new", *_new_key(key_type), "-subj", "/CN=" + cn, "-keyout", key, "-out", csr)
    with open(extensions, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectKeyIdentifier = hash\n"
                "authorityKeyIdentifier = keyid, issuer\n")
        if san:
            f.write("subjectAltName = " + ",".join(san) + "\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key,
             "-set_serial", str(secrets.randbits(63)), "-days", "30", "-extfile", extensions, "-out", cert)
    return CertFiles(cert, key, ca.cert)


def make_wrong_name_certificate(directory, ca=None, name="wrongname"):
    """A certificate for wrong.example only (neither localhost nor
    127.0.0.1) signed by ca: its chain verifies, its name does not."""
    return make_ca_signed_certificate(directory, cn="wrong.example", san=("DNS:wrong.example",), ca=ca, name=name)


def certificate_fingerprint(cert, colons=False):
    """The SHA-256 of a PEM certificate's DER form in lower-case hex
    ("ab:cd:..." with colons=True), as a client pins it."""
    with open(cert) as f:
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read().strip())).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)) if colons else digest


_default_certificate = None
_default_certificate_dir = None
_default_certificate_lock = threading.Lock()


def default_certificate():
    """A CA-signed certificate for localhost and 127.0.0.1, made once per
    process in a temporary folder removed at exit."""
    global _default_certificate, _default_certificate_dir
    with _default_certificate_lock:
        if _default_certificate is None:
            _default_certificate_dir = tempfile.TemporaryDirectory(prefix="mm-smarthost-")
            atexit.register(_default_certificate_dir.cleanup)
            _default_certificate = make_ca_signed_certificate(_default_certificate_dir.name)
        return _default_certificate


# --- what the smarthost records ---------------------------------------------

@dataclasses.dataclass
class Transaction:
    """One mail transaction that reached the end of DATA."""
    connection: int               # 1 for the first connection accepted, 2 for the next...
    helo: str                     # the name given in EHLO or HELO
    esmtp: bool                   # True after EHLO, False after HELO
    tls: bool                     # TLS was active (STARTTLS or implicit)
    tls_version: Optional[str]    # "TLSv1.3", ... or None
    login: Optional[str]          # the authenticated user, or None
    auth_mechanism: Optional[str]  # "PLAIN", "CRAM-MD5", ... or None
    mail_from: str                # "" for the null sender
    mail_options: List[str]       # MAIL FROM parameters, upper case ("SIZE=123", "BODY=8BITMIME")
    rcpt_tos: List[str]           # the accepted recipients only, in order
    data: bytes                   # the message as received: CRLF lines, dot-stuffing removed
    reply: Optional[int]          # code sent after the final dot; None when dropped
    queue_id: str                 # named in a 250 reply ("queued as SH1")


LogLine = collections.namedtuple("LogLine", "connection tls line raw pipelined")
LogLine.__doc__ = """One line the client sent outside DATA (a command or an
answer to an AUTH challenge): the connection's number, whether TLS was
active, the line without its line end (str), the bytes as received, and
whether more input was already waiting when it was read (the client sent
ahead without waiting for a reply, as PIPELINING allows)."""


# --- one client connection --------------------------------------------------

class _Hooks:
    """aiosmtpd's handler: the scripted replies for MAIL, RCPT and DATA.
    server is the _Connection, so server.host is the Smarthost."""

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        code, text = server.host.mail_reply or (250, "2.1.0 OK")
        if 200 <= code < 300:
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
        return f"{code} {text}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        replies = {k.lower(): v for k, v in (server.host.rcpt_replies or {}).items()}
        code, text = replies.get(address.lower(), (250, "2.1.5 OK"))
        if 200 <= code < 300:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return f"{code} {text}"

    async def handle_DATA(self, server, session, envelope):
        host = server.host
        queue_id = f"SH{len(host.messages) + 1}"
        code, text = host.data_reply or (250, f"2.0.0 OK queued as {queue_id}")
        drop = host.drop_after_data
        ssl_object = server.transport.get_extra_info("ssl_object")
        login = session.auth_data.login.decode("utf-8", "replace") if session.authenticated else None
        host._add_transaction(Transaction(
            connection=server.number, helo=session.host_name, esmtp=session.extended_smtp,
            tls=ssl_object is not None, tls_version=ssl_object.version() if ssl_object else None,
            login=login, auth_mechanism=session.auth_mechanism if session.authenticated else None,
            # aiosmtpd keeps the null sender as "<>"
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            mail_options=list(envelope.mail_options),
            rcpt_tos=list(envelope.rcpt_tos), data=bytes(envelope.original_content),
            reply=None if drop else code, queue_id=queue_id))
        if drop:
            server.drop()
        return f"{code} {text}"


class _Connection(SMTP):
    """One client connection. aiosmtpd runs the protocol; this adds what a
    test controls (EHLO reply, TLS and AUTH policy, greeting, dropping) and
    what it sees (every line, in order, with the TLS state)."""

    # The usual challenges; aiosmtpd's own are "User Name\0" and "Password\0".
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, host, number):
        self.host = host
        self.number = number
        self.greeted = False
        self.dropped = False
        self.socket = None
        self.started = False  # aiosmtpd has the connection (after any implicit TLS handshake)
        self.handshake = None
        self.advertise = {k.upper(): v for k, v in (host.advertise or {}).items()}
        self.mechanisms = host.offered_mechanisms()
        # A stripped STARTTLS is refused too (454), as an attacker in the path would.
        offers_starttls = host.starttls and self.advertise.get("STARTTLS", True) not in (False, None)
        super().__init__(
            _Hooks(), hostname=host.hostname, loop=host._loop,
            data_size_limit=host.max_message_size,
            enable_SMTPUTF8=self.advertise.get("SMTPUTF8") not in (None, False),
            tls_context=host.tls_context if offers_starttls else None,
            # AUTH policy (TLS first, auth_required) is ours: see smtp_AUTH
            # and check_auth_needed.
            auth_require_tls=False, auth_required=False,
            authenticator=self._check_password,
            auth_exclude_mechanism=[m for m in ALL_MECHANISMS if m not in self.mechanisms])

    def tls_active(self):
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is not None

    def drop(self):
        """Closes the connection; nothing more is sent on it."""
        self.dropped = True
        self.transport.close()

    # --- the wire ---

    def _client_connected_cb(self, reader, writer):
        super()._client_connected_cb(reader, writer)
        # aiosmtpd reads commands and AUTH answers with readuntil(b"\n")
        # (readline() calls it) and DATA lines with readuntil(b"\r\n"): wrap
        # the reader's method to log the former. The reader is the same
        # object for the whole connection, before and after STARTTLS.
        read = reader.readuntil

        async def readuntil(separator=b"\n"):
            raw = await read(separator)
            if separator == b"\n":
                self._record_line(raw, pipelined=bool(reader._buffer))
            return raw
        reader.readuntil = readuntil

    def _record_line(self, raw, pipelined):
        line = raw[:-2] if raw.endswith(b"\r\n") else raw.rstrip(b"\n")
        text = line.decode("utf-8", "replace")
        self.host.log.append(LogLine(self.number, self.tls_active(), text, raw, pipelined))
        self.host._note(self.number, "C", text)

    async def push(self, status):
        if self.dropped:
            return
        close = False
        if not self.greeted:  # the first reply is the greeting
            self.greeted = True
            if self.host.greeting_delay:
                await asyncio.sleep(self.host.greeting_delay)
            if self.host.greeting_reply:
                code, text = self.host.greeting_reply
                status = f"{code} {text}"
                close = not 200 <= code < 300
        self.host._note(self.number, "S", status if isinstance(status, str) else status.decode("ascii", "replace"))
        await super().push(status)
        if close:
            self.transport.close()

    def connection_made(self, transport):
        if self.socket is not None:  # the STARTTLS layer (aiosmtpd's own)
            return super().connection_made(transport)
        self.socket = transport.get_extra_info("socket")
        self.host._open.add(self)
        if not self.host.implicit_tls:
            self.started = True
            return super().connection_made(transport)
        # TLS from the first byte: the handshake comes before aiosmtpd sees
        # the connection, so that a failed one is recorded (a TLS server
        # made by asyncio's create_server says nothing about it).
        transport.pause_reading()
        self.handshake = self.loop.create_task(self._start_implicit_tls(transport))

    async def _start_implicit_tls(self, transport):
        try:
            tls_transport = await self.loop.start_tls(transport, self, self.host.tls_context, server_side=True,
                                                      ssl_handshake_timeout=30)
        except OSError as error:  # ssl.SSLError, a reset, the timeout
            self.host._tls_failed(self.number, error)
            transport.abort()
            return
        self.started = True
        super().connection_made(tls_transport)

    def connection_lost(self, error):
        self.host._open.discard(self)
        if self.started:  # not after a failed implicit TLS handshake
            super().connection_lost(error)

    def cut(self):
        """Ends the connection at once (Smarthost.stop): shuts down the
        socket under any TLS layer, which then sees the end and closes, and
        closes the transport (StreamReaderProtocol keeps a plain one open,
        half-closed, at the end of its input)."""
        if self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def handle_exception(self, error):
        # A client that goes away or fails the TLS handshake is no fault of
        # the smarthost; anything else is, and a test can assert errors == [].
        if isinstance(error, TLSSetupException):
            self.host._tls_failed(self.number, error.__cause__ or error)
        elif not isinstance(error, (ConnectionError, asyncio.IncompleteReadError)):
            self.host.errors.append(repr(error))
        return f"451 4.3.0 smarthost error: {error.__class__.__name__}"

    def _create_session(self):
        session = super()._create_session()
        session.auth_mechanism = None
        return session

    # --- commands ---

    async def smtp_EHLO(self, hostname):
        if not hostname:
            return await self.push("501 5.5.4 Syntax: EHLO hostname")
        if self.host.ehlo_fails:
            return await self.push("500 5.5.1 EHLO not recognized")
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        lines = [self.hostname] + self.ehlo_keywords()
        for line in lines[:-1]:
            await self.push("250-" + line)
        await self.push("250 " + lines[-1])

    def ehlo_keywords(self):
        """What EHLO offers now, after the test's advertise changes."""
        words = {"PIPELINING": "", "8BITMIME": ""}
        if self.host.max_message_size:
            words["SIZE"] = str(self.host.max_message_size)
        if self.tls_context and not self.tls_active():
            words["STARTTLS"] = ""
        if self.mechanisms and (self.tls_active() or self.host.auth_without_tls):
            words["AUTH"] = " ".join(self.mechanisms)
        for keyword, value in self.advertise.items():
            if value is False or value is None:
                words.pop(keyword, None)
            elif value is True:
                words[keyword] = ""
            else:
                words[keyword] = str(value)
        return [f"{k} {v}" if v else k for k, v in words.items()]

    async def smtp_MAIL(self, arg):
        if self.host.require_tls and not self.tls_active():
            return await self.push("530 5.7.0 Must issue a STARTTLS command first")
        await super().smtp_MAIL(arg)

    async def check_auth_needed(self, caller_method):
        if self.host.auth_required and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False

    async def smtp_AUTH(self, arg):
        if not self.tls_active() and not self.host.auth_without_tls:
            return await self.push("538 5.7.11 Encryption required for requested authentication mechanism")
        await super().smtp_AUTH(arg)

    # --- AUTH mechanisms (aiosmtpd has PLAIN and LOGIN; it names
    # auth_CRAM__MD5 "CRAM-MD5") ---

    def _check_password(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd's authenticator, for PLAIN and LOGIN."""
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = (self.host.auth or {}).get(user) == password
        if ok:
            session.auth_mechanism = mechanism
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def _succeeded(self, mechanism, user):
        self.session.auth_mechanism = mechanism
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))

    async def _initial_response(self, args):
        """The client's first SASL message: AUTH's second argument ("=" is
        empty) or its answer to an empty challenge. MISSING once a reply
        has been sent."""
        if len(args) < 2:
            return await self.challenge_auth("")
        if args[1] == "=":
            return b""
        try:
            return base64.b64decode(args[1], validate=True)
        except binascii.Error:
            await self.push("501 5.5.2 Can't decode base64")
            return MISSING

    async def auth_CRAM__MD5(self, _, args):
        if len(args) > 1:
            await self.push("501 5.5.2 CRAM-MD5 has no initial response")
            return AuthResult(success=False)
        challenge = f"<{secrets.randbits(32)}.{int(time.time())}@{self.hostname}>".encode()
        response = await self.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False)
        user, _, digest = response.decode("utf-8", "replace").rpartition(" ")
        secret = (self.host.auth or {}).get(user)
        if secret is None or not hmac.compare_digest(
                digest.lower(), hmac.new(secret.encode(), challenge, "md5").hexdigest()):
            return AuthResult(success=False, handled=False)
        return self._succeeded("CRAM-MD5", user)

    def _token_ok(self, fields):
        scheme, _, token = fields.get("auth", "").partition(" ")
        return self.host.oauth_token is not None and scheme.lower() == "bearer" and token == self.host.oauth_token

    async def _token_failed(self, error):
        """RFC 7628 3.2.2 (and Google's XOAUTH2): a 334 with a JSON error,
        the client's dummy answer, then 535."""
        if await self.challenge_auth(json.dumps(error).encode()) is MISSING:
            return AuthResult(success=False)
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, _, args):
        blob = await self._initial_response(args)
        if blob is MISSING:
            return AuthResult(success=False)
        fields = _sasl_fields(blob)
        if not self._token_ok(fields):
            return await self._token_failed({"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"})
        return self._succeeded("XOAUTH2", fields.get("user", ""))

    async def auth_OAUTHBEARER(self, _, args):
        blob = await self._initial_response(args)
        if blob is MISSING:
            return AuthResult(success=False)
        # "n,a=USER,^Ahost=...^Aport=...^Aauth=Bearer TOKEN^A^A" (RFC 7628 3.1)
        gs2_header, _, rest = blob.partition(b"\x01")
        user = ""
        for part in gs2_header.split(b","):
            if part.startswith(b"a="):
                user = part[2:].decode("utf-8", "replace").replace("=2C", ",").replace("=3D", "=")
        if not self._token_ok(_sasl_fields(rest)):
            return await self._token_failed({"status": "invalid_token", "scope": "mail"})
        return self._succeeded("OAUTHBEARER", user)


def _sasl_fields(blob):
    """key=value pairs separated by ^A, as XOAUTH2 and OAUTHBEARER send them."""
    fields = {}
    for part in blob.split(b"\x01"):
        key, eq, value = part.partition(b"=")
        if eq:
            fields[key.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    return fields


# --- the smarthost ------------------------------------------------------------

class Smarthost:
    """An SMTP server on 127.0.0.1:port for one test; see the module
    docstring. Starts at once; stop() (or leaving a with block) stops it.
    Options are attributes read when used (the replies at each command, the
    EHLO reply, TLS and AUTH settings at each connection; certificate and
    port only here), so a test may change them between attempts:
    data_reply=(451, ...) for the first, None for the retry.

    port: 0 picks a free port (see .port); a stopped smarthost's port may be reused.
    hostname: the name in the greeting and EHLO reply (never looked up).
    starttls: offer STARTTLS. implicit_tls: TLS from the first byte (port 465 style).
    certificate: CertFiles or (cert, key); default_certificate() when None.
    require_tls: MAIL before TLS gets 530.
    auth: {"user": "password"} for PLAIN, LOGIN, CRAM-MD5.
    oauth_token: the bearer token XOAUTH2 and OAUTHBEARER accept (for any user).
    auth_mechanisms: which to offer and accept, in this order (default: the
      password ones with auth, the token ones with oauth_token).
    auth_required: MAIL, RCPT and DATA before AUTH get 530 5.7.0.
    auth_without_tls: offer and accept AUTH without TLS (default: 538).
    advertise: changes to the EHLO keywords: {"PIPELINING": False} drops one,
      {"SIZE": 1000} sets its parameter, {"DSN": True} adds a bare one.
      {"STARTTLS": False} also refuses the command (454), as a stripping
      attacker would; an added SMTPUTF8 is also accepted in MAIL, others
      (DSN, ...) are only advertised: aiosmtpd refuses their parameters.
    ehlo_fails: EHLO gets 500, so the client must fall back to HELO.
    greeting_delay: seconds before the greeting.
    greeting_reply: (code, text) instead of 220; not 2xx closes after it.
    mail_reply, data_reply: (code, text) for every MAIL FROM, every final dot.
    rcpt_replies: {"address": (code, text)} (any case); others get 250.
    drop_after_data: close after the final dot without a reply.
    max_message_size: bytes accepted in DATA and advertised as SIZE (None: no limit).

    Records: messages (Transaction), log (LogLine), connections (count),
    transcript (both directions, as text), tls_failures ("N: reason" for
    each failed handshake), errors (the smarthost's own)."""

    def __init__(self, *, port=0, hostname="smarthost.test", starttls=False, implicit_tls=False,
                 certificate=None, require_tls=False, auth=None, oauth_token=None, auth_mechanisms=None,
                 auth_required=False, auth_without_tls=False, advertise=None, ehlo_fails=False,
                 greeting_delay=0.0, greeting_reply=None, mail_reply=None, rcpt_replies=None,
                 data_reply=None, drop_after_data=False, max_message_size=10 * 1024 * 1024):
        if starttls and implicit_tls:
            raise ValueError("starttls and implicit_tls exclude each other")
        if require_tls and not (starttls or implicit_tls):
            raise ValueError("require_tls needs starttls or implicit_tls")
        if (auth or oauth_token) and not (starttls or implicit_tls or auth_without_tls):
            raise ValueError("AUTH is offered only under TLS: add starttls, implicit_tls or auth_without_tls")
        for m in auth_mechanisms or ():
            if m not in ALL_MECHANISMS:
                raise ValueError(f"unknown AUTH mechanism {m!r}")
        self.hostname = hostname
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.require_tls = require_tls
        self.auth = auth
        self.oauth_token = oauth_token
        self.auth_mechanisms = auth_mechanisms
        self.auth_required = auth_required
        self.auth_without_tls = auth_without_tls
        self.advertise = advertise
        self.ehlo_fails = ehlo_fails
        self.greeting_delay = greeting_delay
        self.greeting_reply = greeting_reply
        self.mail_reply = mail_reply
        self.rcpt_replies = rcpt_replies
        self.data_reply = data_reply
        self.drop_after_data = drop_after_data
        self.max_message_size = max_message_size

        self.messages: List[Transaction] = []
        self.log: List[LogLine] = []
        self.transcript = []
        self.errors = []
        self.tls_failures = []
        self._stopping = False
        self.connections = 0
        self._changed = threading.Condition()
        self._open = set()

        self.certificate = None
        self.tls_context = None
        if starttls or implicit_tls:
            if certificate is None:
                certificate = default_certificate()
            self.certificate = certificate if len(certificate) == 3 else CertFiles(*certificate, None)
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(self.certificate.cert, self.certificate.key)
        self._start(port)

    def offered_mechanisms(self):
        if self.auth_mechanisms is not None:
            return list(self.auth_mechanisms)
        return list(PASSWORD_MECHANISMS if self.auth else ()) + list(TOKEN_MECHANISMS if self.oauth_token else ())

    # --- running ---

    def _start(self, port):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # so that a test can start a new smarthost on a stopped one's port at once
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(("127.0.0.1", port))
            self._sock.listen(16)
        except OSError:
            self._sock.close()
            raise
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._start_error = None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name=f"smarthost-{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error

    def _serve(self, ready):
        """The thread: the loop runs until stop()."""
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(self._loop.create_server(
                self._new_connection, sock=self._sock))
        except BaseException as e:
            self._start_error = e
            self._sock.close()
            self._loop.close()
            ready.set()
            return
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    def _new_connection(self):
        self.connections += 1
        return _Connection(self, self.connections)

    async def _shutdown(self):
        """In the loop: stop listening, cut every connection, end every task."""
        self._stopping = True
        self._server.close()
        for connection in list(self._open):
            connection.cut()
        # Let the transports see their sockets end and report connection_lost.
        deadline = time.monotonic() + 2
        while self._open and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def stop(self):
        """Closes every connection and the listening socket, and joins the
        thread. A second call does nothing."""
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("the smarthost's thread did not stop")
        self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- records ---

    def _tls_failed(self, connection, error):
        if not self._stopping:  # stop() cuts handshakes too
            self.tls_failures.append(f"{connection}: {error}")
            self._note(connection, "-", f"TLS handshake failed: {error}")

    def _note(self, connection, direction, text):
        self.transcript.append(f"{connection} {direction}: {text}")

    def _add_transaction(self, transaction):
        self._note(transaction.connection, "C", f"<message of {len(transaction.data)} bytes>")
        with self._changed:
            self.messages.append(transaction)
            self._changed.notify_all()

    def wait_for(self, n, timeout=20.0):
        """Waits until n transactions reached the end of DATA (whatever the
        reply) and returns a copy of messages; raises AssertionError with
        the transcript when they do not within timeout seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= n, timeout):
                raise AssertionError(f"the smarthost got {len(self.messages)} of {n} messages in {timeout} s;"
                                     f" transcript:\n{self.transcript_text()}")
            return list(self.messages)

    @property
    def accepted(self):
        """The transactions answered with 2xx after the final dot."""
        return [m for m in self.messages if m.reply is not None and 200 <= m.reply < 300]

    def lines(self, connection=None):
        """The text of the logged lines (of one connection when given)."""
        return [l.line for l in self.log if connection is None or l.connection == connection]

    def transcript_text(self):
        return "\n".join(list(self.transcript))
