#include "dns/idn.hpp"

#include <idn2.h>

#include <algorithm>
#include <memory>

namespace danerelay::dns {
namespace {

bool Ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

tl::expected<std::string, std::string> ToAsciiDomain(std::string_view domain) {
  if (Ascii(domain)) return Lower(domain);
  const std::string input(domain);
  char* out = nullptr;
  const int rc = idn2_to_ascii_8z(input.c_str(), &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  const std::unique_ptr<char, decltype(&idn2_free)> owned(out, &idn2_free);
  if (rc != IDN2_OK || !out) {
    return tl::unexpected("not a valid internationalized domain name (" +
                          std::string(idn2_strerror(rc)) + ")");
  }
  return Lower(out);
}

tl::expected<std::string, std::string> ToAsciiAddress(std::string_view address) {
  if (address.empty() || Ascii(address)) return std::string(address);
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || !Ascii(address.substr(0, at))) {
    return tl::unexpected(std::string("the local part is not ASCII"));
  }
  auto domain = ToAsciiDomain(address.substr(at + 1));
  if (!domain) return tl::unexpected(domain.error());
  return std::string(address.substr(0, at + 1)) + *domain;
}

std::string ToAsciiAddressIfPossible(std::string_view address) {
  return ToAsciiAddress(address).value_or(std::string(address));
}

}  // namespace danerelay::dns
