#pragma once
// The one way a coroutine on the io thread has work done on another thread and resumes on its
// own executor with the result: Bridge, and on it OnStore (the queue's writer thread, outside any
// transaction: Committer::Post), OnStoreWrite (inside the next group commit: Committer::Write),
// OnStoreSubmit (a new message: Committer::Submit) and OnPool (blocking work on a thread pool:
// password hashes, the metrics endpoint's queue gauges).
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <memory>
#include <type_traits>

#include "queue/committer.hpp"

namespace danerelay::relay {

// `start(resume)` starts the work elsewhere; the work calls resume(R) once, on any thread, and
// the caller resumes on its own executor with that R. Arguments are taken by reference and
// copied where they must outlive the call: callers pass named objects, because GCC 12 destroys
// temporaries that live across a co_await twice.
template <typename R, typename Start>
asio::awaitable<R> Bridge(const Start& start) {
  auto ex = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(R)>(
      [&start, ex](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        start([h, ex](R r) {
          asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        });
      },
      asio::use_awaitable);
}

template <typename F>
auto OnStore(queue::Committer& committer, const F& f)
    -> asio::awaitable<std::invoke_result_t<const F&, queue::Store&>> {
  using Result = std::invoke_result_t<const F&, queue::Store&>;
  const auto start = [&committer, &f](auto resume) {
    committer.Post([f, resume](queue::Store& store) mutable { resume(f(store)); });
  };
  co_return co_await Bridge<Result>(start);
}

// `job` runs inside the next group commit; the result arrives once that commit has returned.
// The job may run more than once (Store::CommitBatch): it must assign its outputs.
inline asio::awaitable<tl::expected<void, queue::StoreError>> OnStoreWrite(
    queue::Committer& committer, const queue::Store::WriteJob& job) {
  const auto start = [&committer, &job](auto resume) { committer.Write(job, resume); };
  co_return co_await Bridge<tl::expected<void, queue::StoreError>>(start);
}

// `message` is moved from; the result arrives once the commit that holds it has returned.
inline asio::awaitable<tl::expected<void, queue::StoreError>> OnStoreSubmit(
    queue::Committer& committer, queue::NewMessage& message) {
  const auto start = [&committer, &message](auto resume) {
    committer.Submit(std::move(message), resume);
  };
  co_return co_await Bridge<tl::expected<void, queue::StoreError>>(start);
}

// `f` runs on `pool` (blocking work off the io thread).
template <typename Pool, typename F>
auto OnPool(Pool& pool, const F& f) -> asio::awaitable<std::invoke_result_t<const F&>> {
  using Result = std::invoke_result_t<const F&>;
  const auto start = [&pool, &f](auto resume) {
    asio::post(pool, [f, resume]() mutable { resume(f()); });
  };
  co_return co_await Bridge<Result>(start);
}

}  // namespace danerelay::relay
