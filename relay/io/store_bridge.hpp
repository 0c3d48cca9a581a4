#pragma once
// Runs a function on the queue's writer thread and resumes the calling coroutine on its own
// executor with the result: OnStore outside any transaction (Committer::Post), OnStoreWrite
// inside the next group commit (Committer::Write).
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <memory>
#include <type_traits>

#include "queue/committer.hpp"

namespace danerelay::relay {

// `f` is taken by reference and copied: callers pass a named function object, because GCC 12
// destroys temporaries that live across a co_await twice.
template <typename F>
auto OnStore(queue::Committer& committer, const F& f)
    -> asio::awaitable<std::invoke_result_t<const F&, queue::Store&>> {
  using Result = std::invoke_result_t<const F&, queue::Store&>;
  auto ex = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(
      [&committer, &f, ex](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        committer.Post([f, h, ex](queue::Store& store) mutable {
          auto result = std::make_shared<Result>(f(store));
          asio::post(ex, [h, result] { (*h)(std::move(*result)); });
        });
      },
      asio::use_awaitable);
}

// `job` runs inside the next group commit; the result arrives once that commit has returned.
// The job may run more than once (Store::CommitBatch): it must assign its outputs.
inline asio::awaitable<tl::expected<void, queue::StoreError>> OnStoreWrite(
    queue::Committer& committer, const queue::Store::WriteJob& job) {
  using Result = tl::expected<void, queue::StoreError>;
  auto ex = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result)>(
      [&committer, &job, ex](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        committer.Write(job, [h, ex](Result r) {
          asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        });
      },
      asio::use_awaitable);
}

}  // namespace danerelay::relay
