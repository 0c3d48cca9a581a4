#include "queue/committer.hpp"

#include <vector>

namespace danerelay::queue {

Committer::Committer(std::unique_ptr<Store> store, size_t max_batch)
    : store_(std::move(store)), max_batch_(max_batch), writer_([this] { Run(); }) {}

Committer::~Committer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  writer_.join();
}

void Committer::Submit(NewMessage message, Callback done) {
  {
    std::lock_guard lock(mu_);
    pending_.push_back(Pending{std::move(message), std::move(done)});
  }
  cv_.notify_one();
}

void Committer::Write(Store::WriteJob job, Callback done) {
  {
    std::lock_guard lock(mu_);
    writes_.push_back(PendingWrite{std::move(job), std::move(done)});
  }
  cv_.notify_one();
}

void Committer::Post(std::function<void(Store&)> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

Committer::Stats Committer::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Committer::Run() {
  std::vector<Pending> batch;
  std::vector<PendingWrite> writes;
  std::vector<const NewMessage*> messages;
  std::vector<const Store::WriteJob*> jobs;
  std::deque<std::function<void(Store&)>> posted;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] {
        return stopping_ || !pending_.empty() || !writes_.empty() || !jobs_.empty();
      });
      if (pending_.empty() && writes_.empty() && jobs_.empty()) return;  // stopping, all done
      while (!pending_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      while (!writes_.empty() && writes.size() < max_batch_) {
        writes.push_back(std::move(writes_.front()));
        writes_.pop_front();
      }
      posted.swap(jobs_);
    }
    for (auto& job : posted) job(*store_);
    posted.clear();
    if (batch.empty() && writes.empty()) continue;
    messages.clear();
    jobs.clear();
    for (const auto& p : batch) messages.push_back(&p.message);
    for (const auto& w : writes) jobs.push_back(&w.job);
    auto results = store_->CommitBatch(messages, jobs);
    size_t committed = 0, written = 0;
    for (const auto& r : results.messages) committed += r.has_value() ? 1 : 0;
    for (const auto& r : results.jobs) written += r.has_value() ? 1 : 0;
    {
      std::lock_guard lock(mu_);
      stats_.messages += committed;
      stats_.writes += written;
      stats_.transactions += 1;
    }
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results.messages[i]));
    for (size_t i = 0; i < writes.size(); ++i) writes[i].done(std::move(results.jobs[i]));
    batch.clear();
    writes.clear();
  }
}

}  // namespace danerelay::queue
