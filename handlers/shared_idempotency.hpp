// Idempotency across a fleet (cluster mode with --redis): the first answer to (principal,
// Idempotency-Key) is kept where every node finds it (core::SharedStore), so a retry on
// any node within 24 hours gets that answer, a new key's secret included, and two first
// attempts on two nodes at once run once: the other is 409 idempotency_in_progress.
//
// The store never holds a usable secret: an answer is sealed (AES-256-GCM) with a key
// derived from the credential the caller presented and the Idempotency-Key (HMAC-SHA256),
// so only the same caller with the same credential can open it, and it is filed under
// SHA-256 of the principal's id and the Idempotency-Key, so nobody else can find it. The
// store sees a name, a request's fingerprint, and ciphertext.
//
// Only successful answers are shared (an error changed nothing: running the request again
// is harmless), so what a tenant can put in Redis is bounded by the writes etcd took. A
// store that is away (or fails between the first attempt and its answer) leaves the
// request to this node's own memory (handlers/idempotency.hpp), as without Redis. A first
// attempt's claim lasts AppConfig::shared_claim_ms; a node that dies meanwhile frees it then.
#pragma once

#include <array>
#include <coroutine>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/shared_store.hpp"
#include "handlers/exchange.hpp"
#include "net/reactor.hpp"

namespace keygate::handlers {

// Where the entry of (principal, Idempotency-Key) is filed: "idem/" and the hex of
// SHA-256 of the principal's key id (the root key: none) and the Idempotency-Key.
std::string shared_name(const Principal& principal, std::string_view idempotency_key);
// The key an answer is sealed with: HMAC-SHA256 keyed by the credential presented.
std::array<uint8_t, 32> seal_key(std::string_view credential, std::string_view idempotency_key);
// An answer sealed for `key`, bound to `name` (nonce, ciphertext, tag), and opened again:
// false when the key, the name or the bytes are not the ones it was sealed with.
std::string seal_answer(const net::Response& res, const std::array<uint8_t, 32>& key,
                        std::string_view name);
bool open_answer(std::string_view sealed, const std::array<uint8_t, 32>& key, std::string_view name,
                 net::Response& out);

// co_await shared(store, call): submits the call and resumes on this reactor when the
// store has answered (or failed it).
class SharedAwaiter {
 public:
  SharedAwaiter(core::SharedStore& store, core::SharedCall& call) : store_(store), call_(call) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    reactor_ = net::Reactor::current();
    call_.context = this;
    call_.done = [](core::SharedCall* c) {
      auto* self = static_cast<SharedAwaiter*>(c->context);
      self->reactor_->post(self->handle_);
    };
    store_.submit(&call_);
  }
  void await_resume() const noexcept {}

 private:
  core::SharedStore& store_;
  core::SharedCall& call_;
  net::Reactor* reactor_ = nullptr;
  std::coroutine_handle<> handle_;
};

inline SharedAwaiter shared(core::SharedStore& store, core::SharedCall& call) {
  return SharedAwaiter(store, call);
}

}  // namespace keygate::handlers
