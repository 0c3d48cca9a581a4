#pragma once
// Typed DNS answers with their DNSSEC state: what dns/ hands to tls/ and relay/.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dns/dnssec.hpp"

namespace danerelay::dns {

enum class Rcode { kNoError, kNxDomain, kNoData, kFailed };

// The common part of an answer.
struct Answer {
  Rcode rcode = Rcode::kFailed;
  DnssecState dnssec = DnssecState::kFailed;
  std::string canonical_name;  // after CNAMEs; equals the query name when there were none
  std::string why;             // for failures and bogus answers: libunbound's explanation
};

struct MxRecord {
  std::uint16_t preference = 0;
  std::string host;  // without the trailing dot; "" for a null MX (RFC 7505)
};
struct MxAnswer : Answer {
  std::vector<MxRecord> records;
};
struct AddressAnswer : Answer {
  std::vector<std::string> addresses;  // text form
};
struct TxtAnswer : Answer {
  std::vector<std::string> records;  // each record's character-strings joined
};
struct TlsaRecord {
  std::uint8_t usage = 0, selector = 0, mtype = 0;
  std::vector<std::uint8_t> data;
  std::string ToString() const;  // "3 1 1 ABCD..." as in a zone file
};
struct TlsaAnswer : Answer {
  std::vector<TlsaRecord> records;
};

// A domain name in uncompressed wire format (libunbound hands out rdata uncompressed) as text,
// without the trailing dot ("" for the root), from `pos` on; `pos` ends after the name.
// nullopt when malformed. A label byte that is not a printable ASCII character, and a "." or
// "\\" inside a label, is written in master-file form (RFC 1035 §5.1: "\\DDD", "\\."), so a
// name from DNS can never carry CR, LF or other control bytes into an SMTP reply, a header or a
// log line, and stays the same name when it is looked up again.
std::optional<std::string> NameFromWire(const unsigned char* p, std::size_t len, std::size_t& pos);

}  // namespace danerelay::dns
