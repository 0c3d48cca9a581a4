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
  std::vector<const NewMessage*> messages;
  std::deque<std::function<void(Store&)>> jobs;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !pending_.empty() || !jobs_.empty(); });
      if (pending_.empty() && jobs_.empty()) return;  // stopping, and nothing left to do
      while (!pending_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
      jobs.swap(jobs_);
    }
    for (auto& job : jobs) job(*store_);
    jobs.clear();
    if (batch.empty()) continue;
    messages.clear();
    for (const auto& p : batch) messages.push_back(&p.message);
    auto results = store_->InsertBatch(messages);
    size_t committed = 0;
    for (const auto& r : results) committed += r.has_value() ? 1 : 0;
    {
      std::lock_guard lock(mu_);
      stats_.messages += committed;
      stats_.transactions += 1;
    }
    for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
    batch.clear();
  }
}

}  // namespace danerelay::queue
