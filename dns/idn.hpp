#pragma once
// Internationalized domain names (IDNA2008 with UTS #46 mapping, through libidn2): what goes
// into DNS, TLSA base domains, DANE-TA reference names and the mandatory-DANE list is the
// A-label form ("xn--bcher-kva.example"), whatever form the address or the configuration used.
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace danerelay::dns {

// The A-label form of `domain`, lower case. ASCII names come back lower-cased and otherwise
// untouched; names with U-labels are mapped (UTS #46, non-transitional) and converted. An
// error (in plain words) for a name that IDNA2008 does not allow.
tl::expected<std::string, std::string> ToAsciiDomain(std::string_view domain);

// An address with its domain in A-labels ("user@xn--bcher-kva.example"); the local part is
// kept. An error when the local part is not ASCII (it needs SMTPUTF8, RFC 6531) or the domain
// cannot be converted. "" stays "" (the null sender).
tl::expected<std::string, std::string> ToAsciiAddress(std::string_view address);
// The same where it can be made, else the address as it is (a non-ASCII local part): for
// headers that name an address, so that they stay ASCII whenever the envelope can.
std::string ToAsciiAddressIfPossible(std::string_view address);

}  // namespace danerelay::dns
