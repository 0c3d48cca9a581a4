#pragma once
// What the 7-bit conversion's unit test and fuzz target compare: the decoded contents of a
// message's leaf parts, in order, as GMime reads them.
#include <gmime/gmime.h>

#include <mutex>
#include <string>
#include <vector>

namespace danerelay::relay {

inline void CollectLeaves(GMimeObject* o, std::vector<std::string>& out) {
  if (GMIME_IS_MULTIPART(o)) {
    for (int i = 0; i < g_mime_multipart_get_count(GMIME_MULTIPART(o)); ++i) {
      CollectLeaves(g_mime_multipart_get_part(GMIME_MULTIPART(o), i), out);
    }
  } else if (GMIME_IS_MESSAGE_PART(o)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
    if (inner && g_mime_message_get_mime_part(inner)) {
      CollectLeaves(g_mime_message_get_mime_part(inner), out);
    }
  } else if (GMIME_IS_PART(o)) {
    GMimeDataWrapper* content = g_mime_part_get_content(GMIME_PART(o));
    if (!content) {
      out.emplace_back();
      return;
    }
    GMimeStream* mem = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(content, mem);
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    out.emplace_back(reinterpret_cast<const char*>(bytes->data), bytes->len);
    g_object_unref(mem);
  }
}

// The decoded contents of the leaf parts of `m`, in order; empty if GMime cannot parse it.
inline std::vector<std::string> Leaves(const std::string& m) {
  static std::once_flag init;
  std::call_once(init, [] { g_mime_init(); });
  GMimeStream* stream = g_mime_stream_mem_new_with_buffer(m.data(), m.size());
  GMimeParser* parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage* message = g_mime_parser_construct_message(parser, nullptr);
  std::vector<std::string> out;
  if (message) {
    if (GMimeObject* body = g_mime_message_get_mime_part(message)) CollectLeaves(body, out);
    g_object_unref(message);
  }
  g_object_unref(parser);
  g_object_unref(stream);
  return out;
}

}  // namespace danerelay::relay
