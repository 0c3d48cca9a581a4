#pragma once
// libopendkim behind a small interface: the only user of <opendkim/dkim.h>. It canonicalises
// (relaxed/relaxed, RFC 6376 §3.4.2 and §3.4.4), hashes and signs; we hand it the header fields
// and the body as they will be sent and get the DKIM-Signature field back.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "relay/dkim/key.hpp"

namespace danerelay::relay::dkim {

class OpenDkim {
 public:
  // `headers`: the fields to sign (h=); `oversign`: of those, the ones signed once more than
  // they occur, so none can be added later (RFC 6376 §8.15); `expire`: x= that long after
  // signing, 0 for none.
  static tl::expected<std::unique_ptr<OpenDkim>, std::string> Make(
      const std::vector<std::string>& headers, const std::vector<std::string>& oversign,
      std::chrono::seconds expire);
  ~OpenDkim();

  // The whole "DKIM-Signature: ..." field, folded, ending in CRLF, for `content` (header and
  // body, CRLF line ends) signed with `key` as d=`domain`, s=`selector`.
  tl::expected<std::string, std::string> Sign(std::string_view content, const Key& key,
                                              std::string_view domain,
                                              std::string_view selector) const;

 private:
  struct Impl;
  explicit OpenDkim(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace danerelay::relay::dkim
