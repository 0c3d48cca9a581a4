#include "tls/server_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <asio/ssl/context.hpp>

namespace danerelay::tls {
namespace {

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

}  // namespace

tl::expected<std::shared_ptr<asio::ssl::context>, std::string> MakeServerContext(
    const ServerTlsOptions& options) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(
      raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(raw, options.cert_file.c_str()) != 1) {
    return tl::unexpected("certificate " + options.cert_file.string() + ": " + OpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(raw, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return tl::unexpected("private key " + options.key_file.string() + ": " + OpenSslError());
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    return tl::unexpected("private key " + options.key_file.string() +
                          " does not match certificate " + options.cert_file.string());
  }
  return ctx;
}

std::string DescribeSession(const ssl_st* ssl) {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  int alg_bits = 0;
  const int bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
  return std::string(SSL_get_version(ssl)) + " with cipher " +
         (cipher ? SSL_CIPHER_get_name(cipher) : "unknown") + " (" + std::to_string(bits) + "/" +
         std::to_string(alg_bits) + " bits)";
}

}  // namespace danerelay::tls
