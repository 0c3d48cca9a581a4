#include "relay/policy/https_client.hpp"

#include <curl/curl.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>
#include <mutex>

#include "relay/network.hpp"

namespace danerelay::relay {
namespace {

struct Sink {
  std::string body;
  std::size_t max_size = 0;
  bool too_large = false;
};

size_t Write(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<Sink*>(user);
  const size_t n = size * count;
  if (sink->body.size() + n > sink->max_size) {
    sink->too_large = true;
    return 0;  // libcurl stops with CURLE_WRITE_ERROR
  }
  sink->body.append(data, n);
  return n;
}

struct CurlDelete {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDelete {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

tl::expected<std::vector<std::string>, std::string> UsableAddresses(
    const std::string& host, const std::vector<std::string>& addresses, bool allow_special) {
  if (allow_special) return addresses;
  std::vector<std::string> usable;
  std::vector<std::string> special;
  for (const auto& a : addresses) {
    if (const auto why = SpecialPurpose(a)) {
      special.push_back(fmt::format("{}: {}", a, *why));
    } else {
      usable.push_back(a);
    }
  }
  if (!usable.empty() || special.empty()) return usable;
  return tl::unexpected(fmt::format(
      "refused: {} has only special-purpose addresses ({}); [mta_sts] allow_special_addresses "
      "is false",
      host, fmt::join(special, ", ")));
}

tl::expected<HttpsResponse, HttpsError> HttpsRequestOnce(const HttpsRequest& req) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (req.addresses.empty()) return tl::unexpected(HttpsError{"no address for " + req.host});
  const std::string url = req.port == 443
                              ? fmt::format("https://{}{}", req.host, req.path)
                              : fmt::format("https://{}:{}{}", req.host, req.port, req.path);
  const auto addresses = UsableAddresses(req.host, req.addresses, req.allow_special_addresses);
  if (!addresses) {
    HttpsError refused{fmt::format("{}: {}", url, addresses.error())};
    refused.refused = true;
    return tl::unexpected(refused);
  }
  std::unique_ptr<CURL, CurlDelete> curl(curl_easy_init());
  if (!curl) return tl::unexpected(HttpsError{"curl_easy_init failed"});
  CURL* c = curl.get();
  // "host:port:addr,addr": libcurl connects there and never resolves the name itself.
  std::string pinned = fmt::format("{}:{}:", req.host, req.port);
  for (size_t i = 0; i < addresses->size(); ++i) {
    const auto& a = (*addresses)[i];
    pinned += (i ? "," : "") + (a.find(':') != std::string::npos ? "[" + a + "]" : a);
  }
  std::unique_ptr<curl_slist, SlistDelete> resolve(curl_slist_append(nullptr, pinned.c_str()));
  Sink sink;
  sink.max_size = req.max_size;
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_RESOLVE, resolve.get());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // RFC 8461 §3.3: no redirects
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!req.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, req.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT, static_cast<long>(req.timeout.count()));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "danerelay");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  std::unique_ptr<curl_slist, SlistDelete> headers;
  if (!req.post_body.empty()) {
    headers.reset(curl_slist_append(nullptr, ("Content-Type: " + req.post_type).c_str()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.post_body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.post_body.size()));
  }
  const CURLcode rc = curl_easy_perform(c);
  if (sink.too_large) {
    return tl::unexpected(HttpsError{fmt::format("{} is larger than {} bytes", url, req.max_size)});
  }
  if (rc != CURLE_OK) {
    return tl::unexpected(
        HttpsError{fmt::format("{}: {}", url, error[0] ? error : curl_easy_strerror(rc)),
                   rc == CURLE_PEER_FAILED_VERIFICATION});
  }
  HttpsResponse out;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  const char* type = nullptr;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
  if (type) out.content_type = type;
  out.body = std::move(sink.body);
  return out;
}

}  // namespace danerelay::relay
