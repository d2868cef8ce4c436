// TLS on keygate's own listener (docs/operations.md, "TLS"): OpenSSL 3 in user space over
// the io_uring reactor. No socket is ever handed to OpenSSL: each connection's TlsSession
// reads the ciphertext the reactor received from one memory BIO and leaves the ciphertext
// to send in another, so a handshake or a record never blocks a reactor thread, and the
// plain path is untouched (a connection without TLS has no session).
//
// TlsContext is one loaded configuration (certificate, key, policy); TlsConfig holds the
// current one, replaced whole by reload() on SIGHUP while connections made under the old
// one keep it until they end.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

using SSL_CTX = struct ssl_ctx_st;
using SSL = struct ssl_st;
using BIO = struct bio_st;

namespace keygate::net {

enum class ClientAuth : uint8_t {
  none,     // no client certificate is asked for
  request,  // asked for; any well-formed one is taken, the certificate binding decides
  require,  // with a client CA: one signed by it is required, or the handshake fails
};

struct TlsOptions {
  std::string cert_file;       // PEM: the certificate, then its chain
  std::string key_file;        // PEM: its private key
  std::string client_ca_file;  // PEM: with it, client certificates must chain to it
  ClientAuth client_auth = ClientAuth::none;
};

class TlsContext {
 public:
  // Loads and checks everything; throws std::runtime_error naming the file and what is
  // wrong with it (unreadable, not PEM, a key that does not match the certificate).
  static std::shared_ptr<TlsContext> load(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* get() const noexcept { return ctx_; }
  // "CN=..., expires 2027-...": for the log.
  const std::string& description() const noexcept { return description_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::string description_;
};

// The listener's current context. Any thread.
class TlsConfig {
 public:
  explicit TlsConfig(TlsOptions options);  // loads: throws as TlsContext::load
  std::shared_ptr<TlsContext> current() const;
  // Loads the files again; on failure keeps the current context and returns false with
  // `error` set (the caller logs it).
  bool reload(std::string& error);

 private:
  TlsOptions options_;
  mutable std::mutex mutex_;
  std::shared_ptr<TlsContext> current_;
};

// The client certificate a connection presented, for the certificate binding.
struct PeerCertificate {
  // Of its DER, as an uploaded certificate's fingerprint. Its validity period is checked
  // at each verification, from the uploaded certificate (core/verify.cpp).
  std::array<uint8_t, 32> sha256{};
};

class TlsSession {
 public:
  explicit TlsSession(std::shared_ptr<TlsContext> context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  enum class Status : uint8_t {
    ok,      // go on
    closed,  // the peer sent close_notify: no more input
    failed,  // a handshake or record error: close the connection
  };
  // Takes `n` received bytes; appends the plaintext they complete to `plain` and whatever
  // must be sent (handshake messages, alerts) to `wire`.
  Status receive(const char* data, size_t n, std::string& plain, std::string& wire);
  // Encrypts `plain` (the answers of a turn), appending the records to `wire`. Before the
  // handshake is done there is nothing to encrypt into: false, nothing appended.
  bool send(std::string_view plain, std::string& wire);

  bool handshake_done() const noexcept { return handshake_done_; }
  // After the handshake: the certificate the client presented, or null.
  const PeerCertificate* peer() const noexcept { return has_peer_ ? &peer_ : nullptr; }
  // The failure of the last `failed`, for the log ("http request on a TLS port", ...).
  const std::string& error() const noexcept { return error_; }

 private:
  void drain(std::string& wire);
  void on_handshake();

  std::shared_ptr<TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // ciphertext received, read by OpenSSL (owned by ssl_)
  BIO* out_ = nullptr;  // ciphertext OpenSSL wrote, to send (owned by ssl_)
  bool handshake_done_ = false;
  bool has_peer_ = false;
  PeerCertificate peer_;
  std::string error_;
};

}  // namespace keygate::net
