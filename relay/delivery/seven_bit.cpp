#include "relay/delivery/seven_bit.hpp"

#include <fmt/format.h>
#include <gmime/gmime.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace danerelay::relay {
namespace {

struct Unref {
  void operator()(void* p) const {
    if (p) g_object_unref(p);
  }
};
template <typename T>
using GPtr = std::unique_ptr<T, Unref>;

// Far more than mail has (Postfix refuses nesting beyond 100 levels); enough to bound the work.
constexpr size_t kMaxParts = 10000;

bool IsEightBit(char c) { return static_cast<unsigned char>(c) > 0x7f; }

// Where the header section of the message ends: after the CRLF that ends its last field, so
// that a field inserted there is the new last one (RFC 5322 §2.1).
size_t HeaderEnd(std::string_view content) {
  if (content.starts_with("\r\n")) return 0;
  const size_t blank = content.find("\r\n\r\n");
  return blank == std::string_view::npos ? content.size() : blank + 2;
}

// The end of the header field starting at `begin`: after its last line, folded lines
// included (RFC 5322 §2.2.3).
size_t FieldEnd(std::string_view content, size_t begin) {
  size_t pos = begin;
  for (;;) {
    const size_t nl = content.find('\n', pos);
    if (nl == std::string_view::npos) return content.size();
    pos = nl + 1;
    if (pos >= content.size() || (content[pos] != ' ' && content[pos] != '\t')) return pos;
  }
}

// Where the field `h` of a part really starts. GMime's offset can point at malformed lines it
// skipped before the field (a line without a colon, a name with a NUL), so the offset is only
// where the search begins: the first line from there that starts with the field's name and a
// colon, within the part's header (up to its first empty line). npos when there is none.
size_t FieldStart(std::string_view content, GMimeHeader* h) {
  const gint64 offset = g_mime_header_get_offset(h);
  if (offset < 0 || static_cast<size_t>(offset) >= content.size()) return std::string_view::npos;
  const std::string_view name = g_mime_header_get_name(h);
  for (size_t at = static_cast<size_t>(offset); at < content.size();) {
    const std::string_view line = content.substr(at, content.find('\n', at) - at);
    if (line.empty() || line == "\r") return std::string_view::npos;  // the header ended
    if (line.size() > name.size() &&
        g_ascii_strncasecmp(line.data(), name.data(), name.size()) == 0) {
      const size_t colon = line.find_first_not_of(" \t", name.size());
      if (colon != std::string_view::npos && line[colon] == ':') return at;
    }
    if (at + line.size() >= content.size()) break;
    at += line.size() + 1;
  }
  return std::string_view::npos;
}

// One change to the original: [begin, end) becomes `text` (a field, or a part's content
// encoded).
struct Edit {
  size_t begin = 0, end = 0;
  std::string text;
};

// A range whose 8-bit octets cannot be converted, and why.
struct Opaque {
  size_t begin = 0, end = 0;
  const char* why = "";
};

struct Plan {
  std::vector<std::pair<size_t, size_t>> convertible;  // leaf contents we may re-encode
  std::vector<Opaque> opaque;
  std::vector<Edit> edits;
  std::string error;
  size_t converted_bytes = 0;
};

const char* EncodingName(GMimeContentEncoding e) {
  return e == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ? "quoted-printable" : "base64";
}

bool IsIdentity(GMimeContentEncoding e) {
  // RFC 2045 §6.1: these three only label the content; anything else already encodes it.
  return e == GMIME_CONTENT_ENCODING_DEFAULT || e == GMIME_CONTENT_ENCODING_7BIT ||
         e == GMIME_CONTENT_ENCODING_8BIT || e == GMIME_CONTENT_ENCODING_BINARY;
}

GMimeHeader* Field(GMimeObject* o, const char* name) {
  GMimeHeaderList* list = g_mime_object_get_header_list(o);
  return list ? g_mime_header_list_get_header(list, name) : nullptr;
}

// How many fields named `name` the part's own header has.
int CountFields(GMimeObject* o, const char* name) {
  GMimeHeaderList* list = g_mime_object_get_header_list(o);
  int n = 0;
  for (int i = 0; list && i < g_mime_header_list_get_count(list); ++i) {
    GMimeHeader* h = g_mime_header_list_get_header_at(list, i);
    if (g_ascii_strcasecmp(g_mime_header_get_name(h), name) == 0) ++n;
  }
  return n;
}

// RFC 2045 §6.4: a composite entity may only be labelled 7bit, 8bit or binary, and it must say
// 7bit once everything inside it is 7-bit.
void Relabel(GMimeObject* o, std::string_view content, Plan& plan) {
  GMimeHeader* cte = Field(o, "Content-Transfer-Encoding");
  if (!cte || g_mime_header_get_offset(cte) < 0) return;
  const auto e = g_mime_content_encoding_from_string(g_mime_header_get_value(cte));
  if (e != GMIME_CONTENT_ENCODING_8BIT && e != GMIME_CONTENT_ENCODING_BINARY) return;
  const size_t at = FieldStart(content, cte);
  if (at == std::string_view::npos) {
    plan.error = "a MIME part header that cannot be read unambiguously";
    return;
  }
  plan.edits.push_back({at, FieldEnd(content, at), "Content-Transfer-Encoding: 7bit\r\n"});
}

// QP for text that is mostly ASCII, base64 for the rest: GMime's own measure (the share of
// 8-bit octets, NULs, line lengths) decides between the two under the 7-bit constraint.
GMimeContentEncoding Choose(std::string_view data, bool text) {
  if (!text) return GMIME_CONTENT_ENCODING_BASE64;
  GPtr<GMimeStream> null(g_mime_stream_null_new());
  GPtr<GMimeStream> filtered(g_mime_stream_filter_new(null.get()));
  GPtr<GMimeFilter> best(g_mime_filter_best_new(GMIME_FILTER_BEST_ENCODING));
  g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered.get()), best.get());
  g_mime_stream_write(filtered.get(), data.data(), data.size());
  g_mime_stream_flush(filtered.get());
  const auto e =
      g_mime_filter_best_encoding(GMIME_FILTER_BEST(best.get()), GMIME_ENCODING_CONSTRAINT_7BIT);
  return e == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ? e : GMIME_CONTENT_ENCODING_BASE64;
}

// Appends `data` encoded. Text for QP goes through LF line ends and back, so that each CRLF is
// a hard line break (RFC 2045 §6.7 rule 4) rather than an encoded "=0D"; base64 takes the
// canonical CRLF form as it is (RFC 2045 §6.8). Encoded lines end in CRLF.
void AppendEncoded(std::string& out, std::string_view data, GMimeContentEncoding encoding) {
  GPtr<GMimeStream> mem(g_mime_stream_mem_new());
  GPtr<GMimeStream> filtered(g_mime_stream_filter_new(mem.get()));
  auto* f = GMIME_STREAM_FILTER(filtered.get());
  GPtr<GMimeFilter> to_lf(g_mime_filter_dos2unix_new(FALSE));
  GPtr<GMimeFilter> encode(g_mime_filter_basic_new(encoding, TRUE));
  GPtr<GMimeFilter> to_crlf(g_mime_filter_unix2dos_new(FALSE));
  if (encoding == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) g_mime_stream_filter_add(f, to_lf.get());
  g_mime_stream_filter_add(f, encode.get());
  g_mime_stream_filter_add(f, to_crlf.get());
  g_mime_stream_write(filtered.get(), data.data(), data.size());
  g_mime_stream_flush(filtered.get());
  const GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
  out.append(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

// Whether a line of `encoded` starts with "--".
bool HasDashLine(std::string_view encoded) {
  if (encoded.starts_with("--")) return true;
  return encoded.find("\n--") != std::string_view::npos;
}

// Why a leaf's content must stay as it is (it may not be re-encoded), or nullptr when it may.
const char* OpaqueReason(GMimePart* part, bool frozen, GMimeContentType* type,
                         GMimeContentEncoding declared) {
  if (frozen) return "in a part under a signature or encryption";
  if (type && g_mime_content_type_is_type(type, "message", "*")) {
    // RFC 2046 §5.2.2, §5.2.3: message/partial and message/external-body are 7bit only.
    return "in a message/* part";
  }
  if (CountFields(GMIME_OBJECT(part), "Content-Transfer-Encoding") > 1) {
    // Readers differ on which one counts (GMime the last, others the first).
    return "in a part with two Content-Transfer-Encoding fields";
  }
  if (Field(GMIME_OBJECT(part), "Content-Transfer-Encoding") &&
      declared == GMIME_CONTENT_ENCODING_DEFAULT) {
    // An encoding GMime does not know (x-token, RFC 2045 §6.3): re-encoding it would change
    // what the content means.
    return "in a part with an unknown transfer encoding";
  }
  if (!IsIdentity(declared)) return "in a part declared base64 or quoted-printable";
  return nullptr;
}

struct Encoded {
  GMimeContentEncoding encoding;
  std::string bytes;
};

// `data` (which ends at `end` in `content`) in a 7-bit transfer encoding.
Encoded EncodeLeaf(std::string_view data, bool text, std::string_view content, size_t end) {
  Encoded out{Choose(data, text), {}};
  AppendEncoded(out.bytes, data, out.encoding);
  if (out.encoding == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE && HasDashLine(out.bytes)) {
    // A soft line break can put "--" and the enclosing boundary at the start of a line, which
    // would end the part there (RFC 2046 §5.1.1: the content must not hold a delimiter).
    // Base64's alphabet has no "-".
    out.encoding = GMIME_CONTENT_ENCODING_BASE64;
    out.bytes.clear();
    AppendEncoded(out.bytes, data, out.encoding);
  }
  // Base64 ends its last line itself; where a boundary follows, its own CRLF does that
  // (RFC 2046 §5.1.1), and the encoder's would add a line.
  if (out.encoding == GMIME_CONTENT_ENCODING_BASE64 && out.bytes.ends_with("\r\n") &&
      content.substr(end).starts_with("\r\n")) {
    out.bytes.resize(out.bytes.size() - 2);
  }
  return out;
}

// The header fields a re-encoded leaf needs, inserted before `header_end` (the CRLF that ends
// the part's header) or replacing its Content-Transfer-Encoding. False (with plan.error) when
// the header cannot be edited.
bool PlanLeafHeader(GMimePart* part, bool bare, size_t header_end, GMimeContentEncoding encoding,
                    std::string_view content, Plan& plan) {
  GMimeHeader* ct = Field(GMIME_OBJECT(part), "Content-Type");
  const bool has_type = ct && g_mime_header_get_offset(ct) >= 0;
  if (bare) {
    // No MIME-Version: the body is RFC 5322 text of unknown charset. RFC 1428 names that
    // charset "unknown-8bit"; the readers who knew it before still can after decoding.
    plan.edits.push_back({header_end, header_end, "MIME-Version: 1.0\r\n"});
    if (!has_type) {
      plan.edits.push_back(
          {header_end, header_end, "Content-Type: text/plain; charset=unknown-8bit\r\n"});
    }
  }
  const std::string field =
      std::string("Content-Transfer-Encoding: ") + EncodingName(encoding) + "\r\n";
  GMimeHeader* cte = Field(GMIME_OBJECT(part), "Content-Transfer-Encoding");
  if (cte && g_mime_header_get_offset(cte) >= 0) {
    const size_t at = FieldStart(content, cte);
    if (at == std::string_view::npos) {
      plan.error = "a MIME part header that cannot be read unambiguously";
      return false;
    }
    plan.edits.push_back({at, FieldEnd(content, at), field});
  } else {
    plan.edits.push_back({header_end, header_end, field});
  }
  return true;
}

void PlanLeaf(GMimePart* part, bool frozen, bool bare, std::string_view content, Plan& plan) {
  GMimeDataWrapper* wrapper = g_mime_part_get_content(part);
  GMimeStream* stream = wrapper ? g_mime_data_wrapper_get_stream(wrapper) : nullptr;
  if (!stream) return;  // no content
  const auto begin = static_cast<size_t>(std::max<gint64>(stream->bound_start, 0));
  const auto end = stream->bound_end < 0
                       ? content.size()
                       : std::min(static_cast<size_t>(stream->bound_end), content.size());
  if (begin >= end) return;
  const std::string_view data = content.substr(begin, end - begin);
  GMimeContentType* type = g_mime_object_get_content_type(GMIME_OBJECT(part));
  const GMimeContentEncoding declared = g_mime_data_wrapper_get_encoding(wrapper);
  if (const char* reason = OpaqueReason(part, frozen, type, declared)) {
    plan.opaque.push_back({begin, end, reason});
    return;
  }
  plan.convertible.emplace_back(begin, end);
  if (std::none_of(data.begin(), data.end(), IsEightBit)) return;  // stays as it is

  // Only the CRLF before the content ends the part's header: fields go in just before it.
  if (begin < 2 || content.substr(begin - 2, 2) != "\r\n") {
    plan.error = "a body part does not start after a CRLF";
    return;
  }
  const bool text = (!type || g_mime_content_type_is_type(type, "text", "*")) &&
                    declared != GMIME_CONTENT_ENCODING_BINARY;
  Encoded encoded = EncodeLeaf(data, text, content, end);
  if (!PlanLeafHeader(part, bare, begin - 2, encoded.encoding, content, plan)) return;
  plan.converted_bytes += encoded.bytes.size();
  plan.edits.push_back({begin, end, std::move(encoded.bytes)});
}

void PlanMessage(GMimeMessage* message, bool frozen, std::string_view content, Plan& plan);

void PlanObject(GMimeObject* o, bool frozen, bool bare, std::string_view content, Plan& plan) {
  if (GMIME_IS_MULTIPART(o)) {
    frozen = frozen || GMIME_IS_MULTIPART_SIGNED(o) || GMIME_IS_MULTIPART_ENCRYPTED(o);
    if (!frozen) Relabel(o, content, plan);
    GMimeMultipart* mp = GMIME_MULTIPART(o);
    for (int i = 0; i < g_mime_multipart_get_count(mp); ++i) {
      PlanObject(g_mime_multipart_get_part(mp, i), frozen, false, content, plan);
    }
  } else if (GMIME_IS_MESSAGE_PART(o)) {
    if (!frozen) Relabel(o, content, plan);
    if (GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o))) {
      PlanMessage(inner, frozen, content, plan);
    }
  } else if (GMIME_IS_PART(o)) {
    PlanLeaf(GMIME_PART(o), frozen, bare, content, plan);
  }
}

void PlanMessage(GMimeMessage* message, bool frozen, std::string_view content, Plan& plan) {
  GMimeObject* body = g_mime_message_get_mime_part(message);
  if (!body) return;
  const bool bare = g_mime_object_get_header(GMIME_OBJECT(message), "MIME-Version") == nullptr;
  PlanObject(body, frozen, bare, content, plan);
}

// The first 8-bit octet outside the contents we may convert, as a reason; empty if none.
std::string Unconvertible(std::string_view content, Plan& plan) {
  std::sort(plan.convertible.begin(), plan.convertible.end());
  size_t from = 0;
  auto check = [&](size_t to) -> std::string {
    const auto* first = content.data() + from;
    const auto* hit = std::find_if(first, content.data() + to, IsEightBit);
    if (hit == content.data() + to) return {};
    const auto at = static_cast<size_t>(hit - content.data());
    if (at < HeaderEnd(content)) return "8-bit octets in the message header";
    for (const auto& o : plan.opaque) {
      if (at >= o.begin && at < o.end) return std::string("8-bit octets ") + o.why;
    }
    return "8-bit octets in a MIME part header or outside the body parts";
  };
  for (const auto& [begin, end] : plan.convertible) {
    if (begin > from) {
      if (auto why = check(begin); !why.empty()) return why;
    }
    from = std::max(from, end);
  }
  return check(content.size());
}

}  // namespace

bool HasEightBit(std::string_view content) {
  return std::any_of(content.begin(), content.end(), IsEightBit);
}

tl::expected<std::optional<std::string>, std::string> ToSevenBit(std::string_view content) {
  if (!HasEightBit(content)) return std::nullopt;
  // A header would need RFC 2047 words, and which of its fields may carry them is not ours to
  // guess (addresses cannot): such a message needs SMTPUTF8 (RFC 6532) or goes back.
  if (HasEightBit(content.substr(0, HeaderEnd(content)))) {
    return tl::unexpected(std::string("8-bit octets in the message header"));
  }
  // Parsing costs GMime time and memory per part, on the delivery thread: a message of tiny
  // parts (300,000 in 3 MB took 5 s and 500 MB) is refused before it is parsed. Each part
  // starts with a line "--boundary", so counting such lines bounds the parts.
  size_t dash_lines = content.starts_with("--") ? 1 : 0;
  for (size_t at = content.find("\n--"); at != std::string_view::npos && dash_lines <= kMaxParts;
       at = content.find("\n--", at + 3)) {
    ++dash_lines;
  }
  if (dash_lines > kMaxParts) {
    return tl::unexpected(fmt::format("more than {} MIME parts", kMaxParts));
  }
  static std::once_flag init;
  std::call_once(init, [] { g_mime_init(); });
  // GMime reads a copy (its memory stream owns its bytes) and keeps only offsets into it for
  // the contents (persist_stream), so the parts are not copied again.
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(content.data(), content.size()));
  GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  GPtr<GMimeMessage> message(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!message) return tl::unexpected(std::string("the message cannot be parsed as MIME"));

  Plan plan;
  PlanMessage(message.get(), false, content, plan);
  if (!plan.error.empty()) return tl::unexpected(plan.error);
  if (auto why = Unconvertible(content, plan); !why.empty()) return tl::unexpected(why);
  std::stable_sort(plan.edits.begin(), plan.edits.end(),
                   [](const Edit& a, const Edit& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < plan.edits.size(); ++i) {
    if (plan.edits[i].begin < plan.edits[i - 1].end) {
      return tl::unexpected(std::string("overlapping MIME parts"));
    }
  }

  std::string out;
  out.reserve(content.size() + plan.converted_bytes + 1024);
  size_t from = 0;
  for (const Edit& e : plan.edits) {
    out.append(content.substr(from, e.begin - from));
    out += e.text;
    from = e.end;
  }
  out.append(content.substr(from));
  if (HasEightBit(out)) return tl::unexpected(std::string("the conversion left 8-bit octets"));
  return out;
}

}  // namespace danerelay::relay
