// SPDX-License-Identifier: GPL-2.0-or-later
// STARTTLS context for smtp-listener (tls.hh).
#include "tls.hh"

#include <openssl/err.h>

namespace mm::smtp {

std::string tls_error_text()
{
    std::string text;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!text.empty())
            text += "; ";
        text += buf;
    }
    return text.empty() ? "unknown TLS error" : text;
}

Result<TlsContext> load_server_context(const std::string& cert_file, const std::string& key_file)
{
    TlsContext ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx)
        return Error::temporary("cannot create a TLS context: " + tls_error_text());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1)
        return Error::permanent("tls_cert_file " + cert_file + ": " + tls_error_text());
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        return Error::permanent("tls_key_file " + key_file + ": " + tls_error_text());
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        return Error::permanent("tls_key_file " + key_file + " does not match " + cert_file);
    return ctx;
}

} // namespace mm::smtp
