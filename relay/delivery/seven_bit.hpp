#pragma once
// RFC 6152 §3: a message with an 8-bit body may go to a next hop that does not offer 8BITMIME
// only after it has been converted to 7 bits (or it must be returned). This is that conversion,
// sans-I/O: stored message bytes (CRLF) in, 7-bit message bytes out.
//
// What it does: every leaf body part whose content holds 8-bit octets and is declared 7bit,
// 8bit or binary (or nothing) is re-encoded, quoted-printable for mostly-ASCII text and base64
// otherwise, and its Content-Transfer-Encoding header is replaced (or added). Every other byte
// (the header, other parts, boundaries, preamble) is kept as it was: GMime finds the parts and
// encodes, the result is spliced into the original rather than re-serialized by GMime.
//
// What it does not do: convert 8-bit headers (RFC 6532 UTF-8 headers have no 7-bit form here),
// touch parts inside multipart/signed or multipart/encrypted (RFC 1847 §2.1: their content must
// already be 7-bit; re-encoding would break the signature), or keep DKIM signatures valid: a
// converted message no longer matches a body hash made before (RFC 6376 §5.3 asks signers to
// convert first; a relay that converts later breaks the signature, which RFC 6152 accepts).
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace danerelay::relay {

// True when some octet of `content` is above 127.
bool HasEightBit(std::string_view content);

// The 7-bit form of `content`: nullopt when it is already 7-bit (nothing to do: send it as it
// is), or an error in plain words when it cannot be converted (8-bit octets in a header, in a
// part already declared base64 or quoted-printable, in a preamble, or under a signature).
tl::expected<std::optional<std::string>, std::string> ToSevenBit(std::string_view content);

}  // namespace danerelay::relay
