#pragma once
// A DKIM key record (RFC 6376 §3.6.1) as found in DNS at selector._domainkey.domain: the tags
// `dkim check` and the pre-flight check compare with the configured key. Pure.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/dkim/key.hpp"

namespace danerelay::relay::dkim {

struct KeyRecord {
  std::string key_type = "rsa";  // k= (default rsa)
  std::string public_b64;        // p= without whitespace; "": the key was revoked
  std::string hashes;            // h= (default: any), e.g. "sha1:sha256"
  std::string services = "*";    // s= (default "*"), e.g. "email"
};

// The key record among the TXT records of a selector: the one record that parses as a tag list
// with v=DKIM1 first if present (§3.6.1) and a p= tag. None: no such record, or several.
std::optional<KeyRecord> FindKeyRecord(const std::vector<std::string>& txt, std::string* why);

// What is wrong with the key record among `txt` for `key`: "" when it holds that key with the
// right k=; else missing, revoked (empty p=), another k=, an h= without sha256 or an s=
// without email (RFC 6376 §3.6.1: verifiers then ignore the key), or another key.
std::string KeyRecordProblem(const Key& key, const std::vector<std::string>& txt);

// "selector._domainkey.domain": where the key record lives.
std::string KeyRecordName(std::string_view selector, std::string_view domain);

// The zone-file line for a key's record, its text split into strings of at most 255 octets.
std::string ZoneLine(std::string_view selector, std::string_view domain, std::string_view text);

}  // namespace danerelay::relay::dkim
