// [shaping]: how mail goes out to each destination (issue 26). So far [shaping.default] only,
// which applies per recipient domain; sites (MX host sets), rates and per-site overrides are
// to come:
//
//   [shaping.default]
//   connections = 20               # [delivery] max_per_destination, its old name: one of them
//   messages_per_connection = 100
#include "config/load_tables.hpp"

namespace danerelay::config {

void ReadShaping(Reader& r, Source& source, relay::DeliveryOptions& delivery,
                 bool max_per_destination_set) {
  (void)source;
  r.OnlyKeys({"default"});
  auto d = r.Table("default");
  if (!d) return;
  d->OnlyKeys({"messages_per_connection", "connections"});
  d->Unsigned("messages_per_connection", delivery.messages_per_connection, 1, 100000);
  if (d->Get("connections") && max_per_destination_set) {
    return d->FailHere("connections",
                       "[delivery] max_per_destination (its old name) is set too: keep one");
  }
  d->Unsigned("connections", delivery.max_per_destination, 1, 10000);
}

}  // namespace danerelay::config
