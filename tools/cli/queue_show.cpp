#include "tools/cli/queue_show.hpp"

#include "queue/store.hpp"
#include "tools/cli/queue_view.hpp"

namespace danerelay::tools {

int RunQueueShow(const config::Config& config, const std::string& id, ShowFormat format,
                 std::ostream& out, std::ostream& err) {
  auto store = queue::Store::Open(config.queue, queue::OpenMode::kReadOnly);
  if (!store) {
    err << "danerelay: " << store.error().message << "\n";
    return 2;
  }
  auto info = (*store)->GetMessage(id);
  auto content = (*store)->GetContent(id);
  auto attempts = (*store)->GetAttempts(id);
  if (!info || !content || !attempts) {
    const auto& e = !info ? info.error() : !content ? content.error() : attempts.error();
    err << "danerelay: " << e.message << "\n";
    return 2;
  }
  if (!*info || !*content) {
    err << "danerelay: " << id << ": no such message in the queue\n";
    return 1;
  }
  // The queue keeps the site of recipients that still wait (queue stats counts them by it); a
  // finished one's is that of its last attempt that knew one.
  for (auto& r : (**info).recipients) {
    for (auto a = attempts->rbegin(); r.site.empty() && a != attempts->rend(); ++a) {
      if (a->recipient_index == r.index) r.site = a->site;
    }
  }
  switch (format) {
    case ShowFormat::kRaw:
      out.write((*content)->data(), static_cast<std::streamsize>((*content)->size()));
      break;
    case ShowFormat::kJson:
      PrintMessageJson(out, **info, **content, *attempts);
      break;
    case ShowFormat::kText:
      PrintMessage(out, **info, **content, *attempts);
      break;
  }
  return 0;
}

}  // namespace danerelay::tools
