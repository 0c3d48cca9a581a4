#pragma once
// What the signer needs to know of a message's header, read without I/O: the domain of the
// header From (RFC 5322 §3.6.2; DKIM's d= must align with it for DMARC, RFC 7489 §3.1.1) and the
// d= of the DKIM-Signature fields already there. Canonicalisation is libopendkim's, not ours.
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace danerelay::relay::dkim {

// One header field, unfolded lines kept as they are: name and the whole field (name, colon,
// value, folding) without its final line break.
struct HeaderField {
  std::string_view name;
  std::string_view text;
};

// The header fields of `content` (up to the first empty line); `body_offset` receives where the
// body starts (content.size() when there is none).
std::vector<HeaderField> SplitHeader(std::string_view content, std::size_t* body_offset);

// The single header From mailbox, "local@domain", its domain lower case in A-labels (a U-label
// domain is converted: d= is always ASCII); an error says why there is none (no From, several
// From fields, several mailboxes, no domain, a domain IDNA2008 does not allow).
tl::expected<std::string, std::string> FromAddress(const std::vector<HeaderField>& fields);
// Its domain.
tl::expected<std::string, std::string> FromDomain(const std::vector<HeaderField>& fields);

// Whether a header holds a NUL byte: libopendkim reads fields as C strings, so it would sign
// something other than what is sent.
bool HasNul(std::string_view header);

// The lower-case d= of every DKIM-Signature field.
std::vector<std::string> SignedDomains(const std::vector<HeaderField>& fields);

// Case-insensitive ASCII comparison for header names and domains.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace danerelay::relay::dkim
