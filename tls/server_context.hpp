#pragma once
// The server side of TLS: the context a listener uses for STARTTLS (RFC 3207).
// The DANE client side is in client.hpp.
#include <filesystem>
#include <memory>
#include <string>

#include <tl/expected.hpp>

namespace asio::ssl {
class context;
}
struct ssl_st;

namespace danerelay::tls {

struct ServerTlsOptions {
  std::filesystem::path cert_file;  // PEM, leaf first, then intermediates
  std::filesystem::path key_file;   // PEM private key matching the leaf
};

// TLS 1.2 or newer, the server's cipher preference, no compression, no renegotiation.
// Fails with a message naming the file when the certificate or key cannot be loaded or do not
// belong together.
tl::expected<std::shared_ptr<asio::ssl::context>, std::string> MakeServerContext(
    const ServerTlsOptions& options);

// "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", as Postfix logs it.
std::string DescribeSession(const ssl_st* ssl);

}  // namespace danerelay::tls
