// Benchmark aid (tools/bench-queue.sh), not installed: fills a queue through the store's own
// insert path with MESSAGES messages of RCPTS recipients each, every recipient deferred to a
// time one to two hours ahead, as a backlog for a destination that is down looks.
// Message i goes to domain d<i % DOMAINS>.example, whose MX host (its site, recorded with the
// attempt that deferred it) is mx<(i % DOMAINS) % SITES>.example: SITES (default and at most
// DOMAINS) sites.
//
// Usage: danerelay-bench-fill QUEUE_DIR MESSAGES RCPTS DOMAINS [SITES]
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "queue/queue_id.hpp"
#include "queue/store.hpp"

using namespace danerelay::queue;

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s QUEUE_DIR MESSAGES RCPTS DOMAINS [SITES]\n", argv[0]);
    return 2;
  }
  StoreOptions options;
  options.path = argv[1];
  const long messages = std::atol(argv[2]), rcpts = std::atol(argv[3]),
             domains = std::atol(argv[4]), sites = argc == 6 ? std::atol(argv[5]) : domains;
  if (messages < 0 || rcpts < 1 || domains < 1 || sites < 1) {
    std::fprintf(stderr, "MESSAGES must be >= 0, RCPTS, DOMAINS and SITES >= 1\n");
    return 2;
  }
  auto store = Store::Open(options, OpenMode::kReadWrite);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message.c_str());
    return 1;
  }
  QueueIdGenerator ids;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> later(3600, 7200);
  const std::string content =
      "From: <sender@example.org>\r\nSubject: backlog\r\n\r\n" + std::string(400, 'x') + "\r\n";
  const long kBatch = 2000;
  for (long start = 0; start < messages; start += kBatch) {
    std::vector<NewMessage> batch;
    for (long i = start; i < std::min(messages, start + kBatch); ++i) {
      NewMessage m;
      m.arrival = Clock::now();
      m.id = ids.Next(m.arrival);
      m.sender = "sender@example.org";
      for (long r = 0; r < rcpts; ++r) {
        m.recipients.push_back(
            {"user" + std::to_string(r) + "@d" + std::to_string(i % domains) + ".example",
             kNotifyNone, ""});
      }
      m.content = content;
      m.client_address = "127.0.0.1";
      m.client_helo = "fill.test";
      m.protocol = "ESMTP";
      batch.push_back(std::move(m));
    }
    std::vector<const NewMessage*> ptrs;
    std::vector<Store::WriteJob> jobs;
    for (const auto& m : batch) {
      std::vector<RecipientUpdate> updates;
      std::vector<AttemptRecord> attempts;
      const long i = start + static_cast<long>(ptrs.size());
      const std::string mx = "mx" + std::to_string((i % domains) % sites) + ".example";
      for (long r = 0; r < rcpts; ++r) {
        updates.push_back({static_cast<int>(r), RecipientState::kDeferred,
                           m.arrival + std::chrono::seconds(later(rng)), "4.4.1",
                           "connection refused", mx});
        AttemptRecord a;
        a.recipient_index = static_cast<int>(r);
        a.time = m.arrival;
        a.mx_host = mx;
        a.status = "4.4.1";
        a.reply = "connection refused";
        a.site = mx;
        attempts.push_back(std::move(a));
      }
      ptrs.push_back(&m);
      jobs.push_back([&m, updates, attempts](Store& s) {
        return s.RecordDelivery(m.id, updates, attempts, {}, m.arrival);
      });
    }
    std::vector<const Store::WriteJob*> job_ptrs;
    for (const auto& j : jobs) job_ptrs.push_back(&j);
    auto result = (*store)->CommitBatch(ptrs, job_ptrs);
    for (const auto& r : result.messages) {
      if (!r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return 1;
      }
    }
    for (const auto& r : result.jobs) {
      if (!r) {
        std::fprintf(stderr, "%s\n", r.error().message.c_str());
        return 1;
      }
    }
  }
  return 0;
}
